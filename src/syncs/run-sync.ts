import pg from 'pg';

import { asUserError, PgferryError } from '../errors.js';
import { load } from '../load/load.js';
import type { LoadEvent, LoadResult } from '../load/types.js';
import { readMapping } from '../mappings/mapping-file.js';
import { type Project, projectMappingHint, projectSync, type SyncConfig } from '../project/project-file.js';
import { sourceQuery } from '../sources/database/database-query.js';
import { resolveDatabaseSource } from '../sources/database/database-url.js';
import { describeMysqlQuery } from '../sources/database/mysql-source.js';
import { describePostgresColumns } from '../sources/database/postgres-source.js';
import { SourceSession } from '../sources/database/source-session.js';
import { stagedColumnNames } from '../sources/staged-column-names.js';
import {
  type CursorType,
  cursorTypeOfMysql,
  cursorTypeOfPostgres,
  incrementQuery,
  queryToDescribe,
} from './sync-query.js';

export interface SyncOptions {
  /** Pull everything again (mirror mode then deletes what the source no longer has). */
  full?: boolean;
  /** Validate the increment, promote nothing, leave the cursor. */
  dryRun?: boolean;
  jobs?: number;
  /** Who runs it (a worker's id), shown in the load's progress. */
  runner?: string;
  onEvent?: (event: LoadEvent) => void;
}

export interface SyncResult {
  sync: string;
  full: boolean;
  /** The cursor this run pulled from: null for a full pull. */
  cursorFrom: string | null;
  /** Earlier runs of the sync found interrupted, and marked failed: this run pulled their rows again. */
  superseded: number[];
  result: LoadResult;
}

/**
 * `pgferry sync NAME`: one increment of a sync declared in pgferry.yaml. Pulls the source's
 * rows at or after the stored cursor (all of them on the first run or with `full`), loads
 * them through the sync's mapping, and moves the cursor in the transaction that promotes them
 * (ferry.finish_sync). One run of a sync at a time: a second is refused while one runs.
 */
export async function runSync(
  pool: pg.Pool,
  project: Project,
  name: string,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const config = projectSync(project, name);
  // The sync's own connection opens while the mapping is read and the sync declared: a new
  // connection costs as much as a few statements (its authentication, a new backend).
  const lock = new pg.Client(pool.options);
  lock.on('error', () => {});
  const lockConnected = lock.connect();
  lockConnected.catch(() => {});
  // So does the connection to the source, which describes the query, then stages it.
  let session: SourceSession | undefined;
  try {
    const database = resolveDatabaseSource(config.from);
    session = new SourceSession(database);
    const baseQuery = sourceQuery(database, { table: config.table, query: config.query });
    const described =
      config.cursor === undefined ? undefined : describeColumns(session, queryToDescribe(baseQuery), database.display);
    described?.catch(() => {});
    const mapping = await readMapping(config.mapping, project.mappingsDir, projectMappingHint(project));
    if (config.mode === 'append' && mapping.onConflict !== 'skip') {
      throw new PgferryError(
        `sync ${name}: mode append adds rows and leaves the rows already there as they are, but mapping ${mapping.name} says on_conflict: ${mapping.onConflict}`,
        { location: { file: mapping.path }, hint: 'give the mapping `-- on_conflict: skip`, or use mode: upsert' },
      );
    }
    await declareSync(pool, config, mapping.name);
    await lockConnected;
    const { rows: locked } = await lock.query<{ ok: boolean }>(
      `select pg_try_advisory_lock(ferry.lock_key('sync', $1)) as ok`,
      [name],
    );
    if (!locked[0].ok) {
      throw new PgferryError(`sync ${name} is running in another process`, {
        hint: 'pgferry syncs shows its last run; try again when it ends',
      });
    }
    await pool.query('update ferry.sync_state set last_started_at = now() where sync_name = $1', [name]);
    const superseded = await supersedeInterruptedRuns(pool, name);
    const { rows: states } = await pool.query<{ cursor: string | null; cursor_type: string | null }>(
      'select cursor, cursor_type from ferry.sync_state where sync_name = $1',
      [name],
    );
    const stored = states[0];
    let cursorFrom: string | null = null;
    let query = baseQuery;
    let cursor: { column: string; type: CursorType } | undefined;
    let sourceColumns: string[] | undefined;
    if (config.cursor !== undefined && described) {
      const columns = await described;
      const at = columns.findIndex((c) => c.name === config.cursor);
      if (at < 0) {
        throw new PgferryError(
          `sync ${name}: the cursor ${config.cursor} is not a column of the source query (its columns: ${columns.map((c) => c.name).join(', ')})`,
          { location: { file: project.path, line: config.line } },
        );
      }
      sourceColumns = columns.map((c) => c.name);
      cursor = { column: stagedColumnNames(sourceColumns)[at], type: columns[at].cursorType };
      // A cursor of another type (the source's column changed) cannot be compared: pull all.
      if (!options.full && stored?.cursor != null && stored.cursor_type === cursor.type) cursorFrom = stored.cursor;
      query = incrementQuery(database.kind, baseQuery, { column: config.cursor, type: cursor.type, value: cursorFrom });
    }
    const full = cursorFrom === null;
    const result = await load(pool, {
      from: config.from,
      query,
      // The increment's query has the base query's columns: load() need not describe it again.
      sourceColumns,
      sourceSession: session,
      claimSession: lock,
      tenant: config.tenant,
      mapping: mapping.path,
      maxRejects: config.maxRejects,
      maxDuplicates: config.maxDuplicates,
      dryRun: options.dryRun,
      jobs: options.jobs,
      runner: options.runner,
      onEvent: options.onEvent,
      sync: {
        name,
        mode: config.mode,
        full,
        cursorColumn: cursor?.column,
        cursorType: cursor?.type,
        cursorFrom,
        softDelete: config.softDelete,
      },
    });
    if (result.status !== 'succeeded' && !options.dryRun) {
      await pool.query(
        `update ferry.sync_state
         set last_load_id = $2, last_finished_at = now(), last_outcome = $3, last_error = $4
         where sync_name = $1`,
        [name, result.loadId ?? null, result.resumable ? 'interrupted' : result.status, result.error ?? null],
      );
    }
    return { sync: name, full, cursorFrom, superseded, result };
  } finally {
    // A connection still being made settles first, then ends.
    await session?.end();
    await lockConnected.catch(() => {});
    await lock.end().catch(() => {});
  }
}

/** Records the sync as pgferry.yaml declares it now (an unknown tenant is an input error). */
export async function declareSync(pool: pg.Pool, config: SyncConfig, mappingName: string): Promise<void> {
  const { line: _line, ...declared } = config;
  await pool
    .query('select ferry.declare_sync($1, $2, $3, $4, $5, $6)', [
      config.name,
      config.tenant,
      mappingName,
      config.mode,
      config.schedule ?? null,
      JSON.stringify(declared),
    ])
    .catch((error) => {
      throw asUserError(error);
    });
}

/**
 * A run killed between its pull and its promotion never moved the cursor: the next run pulls
 * the same rows again. The killed run's load is marked failed, and its staging dropped.
 */
async function supersedeInterruptedRuns(pool: pg.Pool, name: string): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>(
    `select l.id from ferry.loads l
     where l.options -> 'sync' ->> 'name' = $1 and ferry.load_status(l) = 'interrupted'`,
    [name],
  );
  for (const { id } of rows) {
    await pool.query(`select ferry.set_status($1, 'failed', $2)`, [
      id,
      'interrupted before it promoted: the next run of the sync pulled its rows again',
    ]);
    await pool.query('select ferry.cleanup_load($1)', [id]);
  }
  return rows.map((r) => Number(r.id));
}

/** The columns of the source query, and how each compares as a cursor. */
async function describeColumns(
  session: SourceSession,
  query: string,
  display: string,
): Promise<{ name: string; cursorType: CursorType }[]> {
  const source = await session.connection();
  if (source.kind === 'postgres') {
    const columns = await describePostgresColumns(source.client, query, display);
    return columns.map((c) => ({ name: c.name, cursorType: cursorTypeOfPostgres(c.typeId) }));
  }
  const columns = await describeMysqlQuery(source.connection, query, display);
  return columns.map((c) => ({ name: c.name, cursorType: cursorTypeOfMysql(c.type) }));
}
