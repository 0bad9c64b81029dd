import type pg from 'pg';

import { PgferryError } from './errors.js';
import { rejectLocator } from './report/reject-location.js';

/** One load as `pgferry loads` and `pgferry status` show it. */
export interface LoadSummary {
  id: number;
  tenant: string;
  mapping: string;
  mappingVersion: number;
  status: string;
  source: string;
  fileSha256: string | null;
  rowsRead: number;
  rowsStaged: number;
  unparseable: number;
  rowsRejected: number;
  duplicates: number;
  inserted: number;
  updated: number;
  unchanged: number;
  checkpointLine: number;
  timings: Record<string, number>;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

const LOAD_SELECT = `
  select l.id, t.slug as tenant, m.name as mapping, m.version as mapping_version, ferry.load_status(l) as status, l.source,
         l.file_sha256, l.rows_read, l.rows_staged, l.parse_rejects, l.rows_rejected, l.duplicates,
         l.inserted, l.updated, l.unchanged, l.checkpoint_line, l.timings, l.error, l.created_at, l.finished_at
  from ferry.loads l
  join ferry.tenants t on t.id = l.tenant_id
  join ferry.mappings m on m.id = l.mapping_id`;

/** Recent loads, newest first. */
export async function listLoads(
  pool: pg.Pool,
  options: { tenant?: string; limit?: number } = {},
): Promise<LoadSummary[]> {
  const { rows } = await pool.query(
    `${LOAD_SELECT}
     where $1::text is null or t.slug = $1
     order by l.id desc
     limit $2`,
    [options.tenant ?? null, options.limit ?? 20],
  );
  return rows.map(toSummary);
}

/** One load; a PgferryError when there is none. */
export async function getLoad(pool: pg.Pool, id: number): Promise<LoadSummary> {
  const { rows } = await pool.query(`${LOAD_SELECT} where l.id = $1`, [id]);
  if (rows.length === 0) throw new PgferryError(`no load ${id}`, { hint: 'pgferry loads lists them' });
  return toSummary(rows[0]);
}

export interface RejectRow {
  line: number | null;
  /** Where in the file: `line 12`, `record 12`, `Products!C12`. */
  where: string | null;
  step: string;
  rule: string;
  column: string | null;
  value: string | null;
  message: string;
  raw: string | null;
}

export async function listRejects(pool: pg.Pool, loadId: number, limit?: number): Promise<RejectRow[]> {
  await getLoad(pool, loadId);
  // Superseded lines are kept a row per key (ferry.duplicates); each is listed as a
  // `duplicate` of its own, with the key as its value.
  const { rows } = await pool.query(
    `select line, step, rule, column_name as column, value, message, raw
     from (
       select line, step, rule, column_name, value, message, raw, id
       from ferry.rejects
       where load_id = $1
       union all
       select line, 'transform', 'duplicate', null, key::text, message, null, 0
       from ferry.duplicate_lines($1)
       where kept_line is not null
     ) as r
     order by line nulls last, id
     limit $2`,
    [loadId, limit ?? null],
  );
  const locate = await rejectLocator(pool, loadId);
  return rows.map((r) => {
    const line = r.line === null ? null : Number(r.line);
    return { ...r, line, where: locate(line, r.column) };
  });
}

/**
 * The rejected lines of a load in a form to fix and load again: the source's own columns
 * (from the staged row, or the raw text for lines that could not be parsed), then
 * `pgferry_line` and `pgferry_reasons`. Lines superseded as duplicates are left out.
 */
export async function rejectedLines(
  pool: pg.Pool,
  loadId: number,
): Promise<{
  columns: string[];
  rows: { values: (string | null)[]; line: number | null; reasons: string; raw: string | null }[];
}> {
  const { rows: loads } = await pool.query<{ columns: string[] | null }>(
    'select columns from ferry.loads where id = $1',
    [loadId],
  );
  if (loads.length === 0) throw new PgferryError(`no load ${loadId}`, { hint: 'pgferry loads lists them' });
  const columns = loads[0].columns ?? [];
  const { rows } = await pool.query<{ line: number | null; step: string; reasons: string; raw: string | null }>(
    `select line, min(step) as step,
            string_agg(rule || coalesce(' ' || column_name, '') || ': ' || message, '; ' order by id) as reasons,
            min(raw) as raw
     from ferry.rejects
     where load_id = $1 and rule <> 'duplicate'
     group by line
     order by line nulls last`,
    [loadId],
  );
  return {
    columns,
    rows: rows.map((r) => {
      let values: (string | null)[] = columns.map(() => null);
      let raw: string | null = r.raw;
      if (r.step !== 'parse' && r.raw) {
        const parsed = JSON.parse(r.raw) as Record<string, string | null>;
        values = columns.map((c) => parsed[c] ?? null);
        raw = null;
      }
      return { values, line: r.line === null ? null : Number(r.line), reasons: r.reasons, raw };
    }),
  };
}

export interface MappingVersion {
  name: string;
  version: number;
  sha256: string;
  target: string;
  keyColumns: string[];
  onConflict: string;
  duplicates: string;
  source: string;
  sourcePath: string | null;
  compiledSql: string | null;
  createdAt: Date;
}

/** The versions of a mapping known to the catalog, newest first (all mappings without a name). */
export async function listMappings(pool: pg.Pool, name?: string): Promise<MappingVersion[]> {
  const { rows } = await pool.query(
    `select name, version, sha256, format('%I.%I', target_schema, target_table) as target, key_columns,
            on_conflict, duplicates, source, source_path, compiled_sql, created_at
     from ferry.mappings
     where $1::text is null or name = $1
     order by name, version desc`,
    [name ?? null],
  );
  return rows.map((r) => ({
    name: r.name,
    version: r.version,
    sha256: r.sha256,
    target: r.target,
    keyColumns: r.key_columns,
    onConflict: r.on_conflict,
    duplicates: r.duplicates,
    source: r.source,
    sourcePath: r.source_path,
    compiledSql: r.compiled_sql,
    createdAt: r.created_at,
  }));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a row of LOAD_SELECT, typed by the mapping below
function toSummary(r: Record<string, any>): LoadSummary {
  return {
    id: Number(r.id),
    tenant: r.tenant,
    mapping: r.mapping,
    mappingVersion: r.mapping_version,
    status: r.status,
    source: r.source,
    fileSha256: r.file_sha256,
    rowsRead: Number(r.rows_read),
    rowsStaged: Number(r.rows_staged),
    unparseable: Number(r.parse_rejects),
    rowsRejected: Number(r.rows_rejected),
    duplicates: Number(r.duplicates),
    inserted: Number(r.inserted),
    updated: Number(r.updated),
    unchanged: Number(r.unchanged),
    checkpointLine: Number(r.checkpoint_line),
    timings: r.timings,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}
