import type { ColumnType } from 'kysely';

/** A bigint column: node-postgres reads int8 as a string (it may not fit a number); callers convert. */
type Int8 = ColumnType<string, never, never>;
/** A column the dashboard only reads. */
type Read<T> = ColumnType<T, never, never>;

/**
 * The catalog tables the dashboard reads, as kysely sees them (docs/schema.sql has them whole).
 * Only the columns read are declared; every one is read-only here: the dashboard writes
 * nothing but through the library's functions.
 */
export interface CatalogTables {
  'ferry.tenants': {
    id: Int8;
    slug: Read<string>;
  };
  'ferry.mappings': {
    id: Int8;
    name: Read<string>;
    version: Read<number>;
    target_schema: Read<string>;
    target_table: Read<string>;
    compiled_sql: Read<string | null>;
  };
  'ferry.loads': {
    id: Int8;
    tenant_id: Int8;
    mapping_id: Int8;
    status: Read<string>;
    source: Read<string>;
    format: Read<string | null>;
    file_sha256: Read<string | null>;
    rows_read: Int8;
    rows_staged: Int8;
    parse_rejects: Int8;
    rows_rejected: Int8;
    duplicates: Int8;
    inserted: Int8;
    updated: Int8;
    unchanged: Int8;
    deleted: Int8;
    timings: Read<Record<string, number>>;
    compiled_sql: Read<string | null>;
    error: Read<string | null>;
    created_at: Read<Date>;
    finished_at: Read<Date | null>;
    rolled_back_at: Read<Date | null>;
  };
  'ferry.load_progress': {
    load_id: Int8;
    step: Read<string>;
    done: Int8;
    total: Int8;
    rows: Int8;
    worker: Read<string | null>;
    updated_at: Read<Date>;
  };
  'ferry.rejects': {
    id: Int8;
    load_id: Int8;
    step: Read<string>;
    line: Read<string | null>;
    column_name: Read<string | null>;
    value: Read<string | null>;
    rule: Read<string>;
    message: Read<string>;
    raw: Read<string | null>;
  };
  'ferry.syncs': {
    name: Read<string>;
    tenant_id: Int8;
    mapping: Read<string>;
    mode: Read<string>;
    schedule: Read<string | null>;
    paused_at: Read<Date | null>;
  };
  'ferry.sync_state': {
    sync_name: Read<string>;
    cursor: Read<string | null>;
    last_load_id: Read<string | null>;
    last_finished_at: Read<Date | null>;
    last_outcome: Read<string | null>;
    last_error: Read<string | null>;
  };
  'ferry.plan_runs': {
    id: Int8;
    name: Read<string>;
    status: Read<string>;
    dry_run: Read<boolean>;
    created_at: Read<Date>;
    finished_at: Read<Date | null>;
  };
  'ferry.plan_steps': {
    run_id: Int8;
    name: Read<string>;
    position: Read<number>;
    kind: Read<string>;
    after: Read<string[]>;
    status: Read<string>;
    load_id: Read<string | null>;
    error: Read<string | null>;
  };
  /** graphile-worker's queue: private tables, read as pgferry's own worker code reads them (jobs/). */
  'graphile_worker._private_jobs': {
    id: Int8;
    task_id: Read<number>;
    key: Read<string | null>;
    locked_by: Read<string | null>;
    locked_at: Read<Date | null>;
    attempts: Read<number>;
  };
  'graphile_worker._private_tasks': {
    id: Read<number>;
    identifier: Read<string>;
  };
}
