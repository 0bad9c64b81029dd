import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';

import { recordAudit } from '../audit.js';
import { withTransaction } from '../db/database.js';
import { asUserError, EXIT, isDatabaseError, isTransient, PgferryError } from '../errors.js';
import { locateInMapping, type Mapping, readMapping } from '../mappings/mapping-file.js';
import { databaseLayout, readDatabaseLayout } from '../sources/database-layout.js';
import { sourceQuery } from '../sources/database-query.js';
import { resolveDatabaseSource } from '../sources/database-url.js';
import { openCsvBytes, openSourceItems } from '../sources/source-items.js';
import { asSourceError, readSourceLayout, type SourceLayout, type SourceOptions } from '../sources/source-layout.js';
import { SourceSession } from '../sources/source-session.js';
import { stagedColumnNames } from '../sources/staged-column-names.js';
import { LoadClaim } from './claim.js';
import { checkInterruption, LoadCancelled, LoadsStopping } from './interruption.js';
import { progressReporter } from './progress.js';
import { promote } from './steps/promote.js';
import { stageCsv } from './steps/stage-csv-bytes.js';
import { stageFromDatabaseQuery } from './steps/stage-database.js';
import { stageRecords } from './steps/stage-records.js';

/**
 * Options of one load; every one has a sensible default but file, tenant and mapping. What
 * the file is (format, encoding, wrapper, sheet, records, table) is detected unless given.
 */
export interface LoadOptions extends SourceOptions {
  /** The data file; or, instead, `from`. */
  file?: string;
  /**
   * A source database instead of a file: a `postgres://` or `mysql://` URL, or `env:NAME` for
   * one held in an environment variable (recorded as `env:NAME`; a URL's password is never
   * recorded). With `table` (the source's table) or `query`.
   */
  from?: string;
  /** With `from`: the SELECT to read. */
  query?: string;
  /** With `from`: the query's columns, when the caller described it already (a sync): not described again. */
  sourceColumns?: string[];
  /**
   * With `from`: the caller's connection to the source (a sync's, which described the query).
   * The stage reads through it; the caller ends it if the load never took it.
   */
  sourceSession?: SourceSession;
  /**
   * A connection outside the pool that the caller keeps open until load() returns (a sync's,
   * which holds the sync's lock): the load is claimed on it rather than on a new connection.
   */
  claimSession?: pg.Client;
  tenant: string;
  /** Mapping name (looked up in `mappingsDir`) or path to a mapping file. */
  mapping: string;
  /** (Default: `mappings`) */
  mappingsDir?: string;
  /** Field delimiter; sniffed among `, ; TAB |` when not given. */
  delimiter?: string;
  /** Fail, promoting nothing, when more rows than this are rejected. */
  maxRejects?: number;
  /** Fail, promoting nothing, when more than this fraction (0–1) of rows read is rejected. */
  maxRejectRate?: number;
  /** Run every step, then roll back and leave no trace. (Default: false) */
  dryRun?: boolean;
  /** Keep the staging and work tables. (Default: false) */
  keepStaging?: boolean;
  /** Load a file even if it was loaded already. (Default: false) */
  force?: boolean;
  /** Rows per MERGE batch. (Default: 10000) */
  batchSize?: number;
  /** Rows per staging commit. (Default: 100000) */
  chunkRows?: number;
  /**
   * Parallel COPY streams into the staging table, 1 to 8: one COPY is bound by one server
   * process's CPU. (Default: the number of CPU cores, at most 8)
   */
  jobs?: number;
  /** Register the load and leave it to a worker (`pgferry worker`): returns status `queued`. */
  queue?: boolean;
  /** The run of a sync this load is (set by runSync): its cursor moves as the load promotes. */
  sync?: SyncOfLoad;
  /** Who runs the load, shown in its progress (a worker's id). */
  runner?: string;
  onEvent?: (event: LoadEvent) => void;
}

/**
 * A sync's run, as its load records it (ferry.loads.options.sync): ferry.finish_sync() reads
 * it inside the promoting transaction.
 */
export interface SyncOfLoad {
  name: string;
  mode: 'append' | 'upsert' | 'mirror';
  /** A full pull (the first, or --full): in mirror mode, what it lacks is deleted. */
  full: boolean;
  /** The cursor column's name in the staging table, and how its values compare. */
  cursorColumn?: string;
  cursorType?: 'timestamptz' | 'timestamp' | 'date' | 'numeric' | 'text';
  /** The cursor this run pulled from (none for a full pull). */
  cursorFrom?: string | null;
  /** mirror: mark absent rows deleted in this column instead of deleting them. */
  softDelete?: string;
}

/** What a sync's promoted load did to the sync: its new cursor, and mirror's deletes. */
export interface SyncOutcome {
  cursor: string | null;
  deleted?: number;
  soft?: boolean;
  /** Why mirror deleted nothing although it ran. */
  kept?: string;
}

export type LoadEvent =
  | { type: 'registered'; loadId: number }
  | { type: 'step'; step: Step }
  | { type: 'stage-progress'; bytesRead: number; totalBytes: number; rowsRead: number }
  | { type: 'promote-progress'; done: number; total: number }
  /** A step failed for a passing reason (a lost connection, a deadlock) and is tried again. */
  | { type: 'retry'; step: Step; attempt: number; delayMs: number; error: string }
  /** Another load (or a rollback: 0) of the same tenant and table holds the promotion lock. */
  | { type: 'waiting'; forLoad: number }
  /** A server crash emptied the load's UNLOGGED staging: the source is staged again from its first line. */
  | { type: 'restage' };

export type Step = 'stage' | 'transform' | 'promote' | 'verify' | 'cleanup';

export interface LoadCounts {
  read: number;
  staged: number;
  parseRejects: number;
  rejected: number;
  duplicates: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

export interface RejectReason {
  rule: string;
  column: string | null;
  count: number;
  example: string;
}

export interface LoadResult {
  /** queued: registered for a worker (`load --queue`); cancelled: stopped by `pgferry cancel`. */
  status: 'succeeded' | 'failed' | 'dry_run' | 'skipped' | 'queued' | 'cancelled';
  loadId?: number;
  /** For a skipped file: the load that already brought it in. */
  previousLoadId?: number;
  mapping: { name: string; version?: number };
  file: string;
  delimiter?: string;
  /** How the file was read: format, wrapper, encoding, sheet, records, table. */
  source?: SourceSummary;
  counts: LoadCounts;
  reasons: RejectReason[];
  timings: Partial<Record<Step, number>>;
  error?: string;
  /** A load failed for a passing reason (the server unreachable): `pgferry resume` finishes it. */
  resumable?: boolean;
  /** For a sync's run: the cursor after it, and what mirror deleted. */
  sync?: SyncOutcome;
}

/** What a load's summary says of how its file was read. */
export type SourceSummary = Omit<SourceLayout, 'columns' | 'letters' | 'bomBytes'>;

const NO_COUNTS: LoadCounts = {
  read: 0,
  staged: 0,
  parseRejects: 0,
  rejected: 0,
  duplicates: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
};

/**
 * Loads one file (any format: see readSourceLayout), or a source database's table or query
 * (`from`), for one tenant through one mapping: stage → transform → promote → verify →
 * cleanup. Input problems (missing file, unknown tenant, broken mapping) throw a
 * PgferryError before any data moves; a load that runs and fails returns status `failed`.
 *
 * @example
 *   const result = await load(db.pool, { file: 'catalog.csv', tenant: 'acme', mapping: 'products' });
 */
export async function load(pool: pg.Pool, options: LoadOptions): Promise<LoadResult> {
  const emit = options.onEvent ?? (() => {});
  // A pool smaller than the jobs would wait forever for its own connections.
  const jobs = Math.min(stagingJobs(options.jobs), pool.options.max ?? 10);
  const mapping = await readMapping(options.mapping, options.mappingsDir);
  if ((options.file === undefined) === (options.from === undefined)) {
    throw new PgferryError('a load reads a file or a source database (--from), one of them');
  }
  if (options.from !== undefined) return loadFromDatabase(pool, options, mapping, jobs, emit);
  const file = options.file!;
  const fileStat = await stat(file).catch(() => undefined);
  if (!fileStat?.isFile()) throw new PgferryError(`no such file: ${file}`);
  if (
    options.delimiter !== undefined &&
    (Buffer.byteLength(options.delimiter) !== 1 || /["\r\n]/.test(options.delimiter))
  ) {
    throw new PgferryError(
      `--delimiter must be one ASCII character other than a quote or a line break, not ${JSON.stringify(options.delimiter)}`,
    );
  }

  const mappingRow = await checkTenantAndRegisterMapping(pool, options.tenant, mapping);
  const part = sourcePart(options);
  const sha256 = partSha256(await fileSha256(file), part);

  // A dry run validates whatever it is given, loaded before or not.
  if (!options.force && !options.dryRun) {
    const { rows } = await pool.query<{ id: number | null }>('select (ferry.previous_load_of_file($1, $2, $3)).id', [
      options.tenant,
      mappingRow.id,
      sha256,
    ]);
    if (rows[0].id !== null) {
      return {
        status: 'skipped',
        previousLoadId: Number(rows[0].id),
        mapping: { name: mapping.name, version: mappingRow.version },
        file,
        counts: NO_COUNTS,
        reasons: [],
        timings: {},
      };
    }
  }

  const layout = await readSourceLayout(file, options);
  return registerAndRun(pool, options, {
    mapping,
    mappingRow,
    jobs,
    emit,
    source: path.resolve(file),
    file,
    sha256,
    bytes: fileStat.size,
    layout,
    extra: { part },
  });
}

/** `load --from`: a source database's query, described there, then staged from it. */
async function loadFromDatabase(
  pool: pg.Pool,
  options: LoadOptions,
  mapping: Mapping,
  jobs: number,
  emit: (event: LoadEvent) => void,
): Promise<LoadResult> {
  const database = resolveDatabaseSource(options.from!);
  if (options.queue && !options.from!.startsWith('env:')) {
    throw new PgferryError('a queued load from a database needs --from env:NAME', {
      hint: 'the worker reads the URL from its own environment: pgferry never stores a password',
    });
  }
  const query = sourceQuery(database, options);
  // The source connection opens while the tenant and mapping are checked.
  const session = options.sourceSession ?? new SourceSession(database);
  try {
    const mappingRow = await checkTenantAndRegisterMapping(pool, options.tenant, mapping);
    const layout = options.sourceColumns
      ? databaseLayout(database, query, options, options.sourceColumns)
      : await readDatabaseLayout(database, query, options, await session.connection());
    // A database is read anew each time: never skipped as "already loaded".
    return await registerAndRun(pool, options, {
      mapping,
      mappingRow,
      jobs,
      emit,
      source: database.display,
      file: database.display,
      sha256: null,
      bytes: null,
      layout,
      sourceUrl: database.url,
      sourceSession: options.queue ? undefined : session,
    });
  } finally {
    if (session !== options.sourceSession) await session.end();
  }
}

/** Registers a load whose source is read and described, claims it, and runs it. */
async function registerAndRun(
  pool: pg.Pool,
  options: LoadOptions,
  load: {
    mapping: Mapping;
    mappingRow: { id: number; version: number };
    jobs: number;
    emit: (event: LoadEvent) => void;
    /** As ferry.loads.source records it. */
    source: string;
    file: string;
    sha256: string | null;
    bytes: number | null;
    layout: SourceLayout;
    sourceUrl?: string;
    sourceSession?: SourceSession;
    extra?: Record<string, unknown>;
  },
): Promise<LoadResult> {
  const { layout } = load;
  const columns = stagedColumnNames(layout.columns);
  const { rows: registered } = await pool.query<{ id: number }>(
    'select (ferry.register_load($1, $2, $3, $4, $5, $6, $7, $8)).id',
    [
      options.tenant,
      load.mappingRow.id,
      load.source,
      load.sha256,
      load.bytes,
      layout.format,
      JSON.stringify({
        delimiter: layout.delimiter,
        ...load.extra,
        // jsonb cannot hold NUL: names keep it only in this process (staged names drop it anyway).
        source: { ...layout, columns: layout.columns.map((c) => c.replaceAll('\0', '')) },
        maxRejects: options.maxRejects,
        maxRejectRate: options.maxRejectRate,
        dryRun: options.dryRun ?? false,
        force: options.force ?? false,
        keepStaging: options.keepStaging ?? false,
        batchSize: options.batchSize,
        sync: options.sync,
      }),
      os.userInfo().username,
    ],
  );
  const loadId = Number(registered[0].id);
  if (options.queue) {
    const { enqueueLoad } = await import('../jobs/queue.js');
    await enqueueLoad(pool, loadId);
    load.emit({ type: 'registered', loadId });
    return {
      status: 'queued',
      loadId,
      mapping: { name: load.mapping.name, version: load.mappingRow.version },
      file: load.file,
      delimiter: layout.delimiter,
      source: sourceSummary(layout),
      counts: NO_COUNTS,
      reasons: [],
      timings: {},
    };
  }
  const claim = (await LoadClaim.take(pool, loadId, options.claimSession))!;
  try {
    load.emit({ type: 'registered', loadId });
    return await runLoad(pool, {
      loadId,
      mapping: load.mapping,
      mappingVersion: load.mappingRow.version,
      file: load.file,
      source: layout,
      sourceUrl: load.sourceUrl,
      sourceSession: load.sourceSession,
      columns,
      jobs: load.jobs,
      options,
      emit: load.emit,
      claim,
      from: { step: 'compile' },
    });
  } finally {
    await claim.release();
  }
}

/** A registered load, claimed by this process, and where to start it (or resume it). */
export interface LoadRun {
  loadId: number;
  mapping: Mapping;
  mappingVersion: number;
  file: string;
  /** How the file is read (kept in the catalog: resume reads it the same way). */
  source: SourceLayout;
  /** A source database's URL (only ever in memory: it may hold a password). */
  sourceUrl?: string;
  /** A connection to that source, open already: the stage's first attempt reads through it. */
  sourceSession?: SourceSession;
  columns: string[];
  jobs: number;
  options: LoadOptions;
  emit: (event: LoadEvent) => void;
  /** This process's claim on the load, renewed after a lost connection. */
  claim: LoadClaim;
  /** compile: a new load. stage: resume staging after a checkpoint. transform: staging is done. */
  from: { step: 'compile' | 'stage' | 'transform'; afterLine?: number; rowsStaged?: number };
}

/** Every step of a load from `run.from` on, to its result, audit line included. */
export async function runLoad(pool: pg.Pool, given: LoadRun): Promise<LoadResult> {
  const report = progressReporter(given.claim, given.loadId, given.options.runner);
  // Every batch boundary (a staging chunk, a promotion batch, a step) is where `pgferry
  // cancel`, or a worker's SIGTERM, stops the load.
  const run: LoadRun = {
    ...given,
    emit: (event) => {
      given.emit(event);
      report(event);
      if (event.type !== 'step' || event.step !== 'cleanup') checkInterruption(given.claim);
    },
  };
  const { loadId, mapping, file, columns, options, emit } = run;
  const timings: Partial<Record<Step, number>> = {};
  const timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
    emit({ type: 'step', step });
    const started = performance.now();
    try {
      return await fn();
    } finally {
      // Written to the catalog at the end: the promotion's transaction holds the load's row.
      timings[step] = Math.round(performance.now() - started);
    }
  };
  const base = {
    loadId,
    mapping: { name: mapping.name, version: run.mappingVersion },
    file,
    delimiter: run.source.delimiter,
    source: sourceSummary(run.source),
  };

  // A dropped connection, a server restart, a deadlock or serialization failure: the step is
  // tried again, after a pause, a few times. Each step can run again (staging from its
  // checkpoint, the others are one transaction each).
  const retrying = async <T>(step: Step, fn: (attempt: number) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (error) {
        if (!isTransient(error) || attempt >= RETRY_DELAYS_MS.length + 1) throw error;
        const delay = RETRY_DELAYS_MS[attempt - 1];
        emit({ type: 'retry', step, attempt, delayMs: delay, error: describeForCatalog(error) });
        await new Promise((resolve) => setTimeout(resolve, delay));
        await run.claim.ensure().catch(() => {});
      }
    }
  };

  // Compile before any data moves: a broken mapping is reported with its file and line.
  const stagingTable =
    run.from.step === 'compile' ? await compile(pool, loadId, mapping, columns) : await stagingTableOf(pool, loadId);

  let finalStatus: LoadResult['status'] = 'failed';
  let failure: string | undefined;
  let syncOutcome: SyncOutcome | undefined;
  try {
    const stage = (from: LoadRun['from']) =>
      timed('stage', () =>
        retrying('stage', async (attempt) =>
          // A retry goes on from the last checkpoint, as `pgferry resume` does (from line 1 if
          // the staging was lost: resume_staging, behind stagingCheckpoint, resets it then).
          stageFile(pool, run, stagingTable, attempt === 1 ? from : await checkpointToRetryFrom()),
        ),
      );
    const transform = async (attempt: number) => {
      if (attempt > 1) staged = (await restagedIfLost()) ?? staged;
      return withTransaction(pool, (client) => client.query('select ferry.transform($1)', [loadId]), {
        tenantCode: true,
      });
    };
    const transformStep = () =>
      timed('transform', () => retrying('transform', transform)).catch((error) => {
        throw mappingRuntimeError(error, mapping);
      });
    // A server crash empties the UNLOGGED staging and work tables: a step tried again, or a
    // resume, after one stages the source again from its first line (the checkpoint is reset).
    // Where a stage step's retry goes on from:
    const checkpointToRetryFrom = async () => {
      if (await stagingLost(pool, loadId)) emit({ type: 'restage' });
      return await stagingCheckpoint(pool, loadId);
    };
    // Before a later step: the new staging's counts; undefined when nothing was lost.
    const restagedIfLost = async () => {
      if (!(await stagingLost(pool, loadId))) return undefined;
      emit({ type: 'restage' });
      return await stage(await stagingCheckpoint(pool, loadId));
    };

    // Resuming after staging: the counts of the staging that was done.
    let staged: { rowsRead: number } =
      run.from.step === 'transform'
        ? ((await restagedIfLost()) ?? { rowsRead: (await loadCounts(pool, loadId)).read })
        : await stage(run.from);

    await transformStep();

    await pool.query('select ferry.count_rejects($1)', [loadId]);
    const before = await loadCounts(pool, loadId);
    const limitBefore = thresholdProblem(before.parseRejects + before.rejected, staged.rowsRead, options);
    if (limitBefore) {
      failure = limitBefore;
    } else {
      const outcome = await retrying('promote', async (attempt) => {
        const restaged = attempt > 1 ? await restagedIfLost() : undefined;
        if (restaged) {
          staged = restaged;
          await transformStep();
        }
        return withTransaction(
          pool,
          async (client) => {
            await client.query('savepoint pgferry_promotion');
            // Names this session for whoever waits for the same tenant and table.
            await client.query(`select set_config('application_name', $1, true)`, [`pgferry load ${loadId}`]);
            const { rows: lock } = await client.query<{ holder: string | null }>(
              'select ferry.try_lock_target($1) as holder',
              [loadId],
            );
            if (lock[0].holder !== null) emit({ type: 'waiting', forLoad: Number(lock[0].holder) });
            // finish_promotion (the undo log and rejects copied to the catalog) is promotion too.
            await timed('promote', async () => {
              const counts = await promote(client, loadId, {
                batchSize: options.batchSize,
                onBatch: (done, total) => emit({ type: 'promote-progress', done, total }),
              });
              await client.query('select ferry.finish_promotion($1, $2, $3, $4)', [
                loadId,
                counts.inserted,
                counts.updated,
                counts.unchanged,
              ]);
            });
            const verified = await timed('verify', () => client.query('select * from ferry.verify_load($1)', [loadId]));
            const rejected = Number(verified.rows[0].parse_rejects) + Number(verified.rows[0].rows_rejected);
            const limitAfter = thresholdProblem(rejected, staged.rowsRead, options);
            if (limitAfter || options.dryRun) {
              // Keep the rejects found while promoting, undo everything else of the promotion.
              const { rows: kept } = await client.query(
                `select line, column_name, value, rule, message, raw from ferry.rejects where load_id = $1 and step = 'promote'`,
                [loadId],
              );
              const counts = await client.query('select * from ferry.loads where id = $1', [loadId]);
              await client.query('rollback to savepoint pgferry_promotion');
              for (const r of kept) {
                await client.query(`select ferry.add_reject($1, 'promote', $2, $3, $4, $5, $6, $7)`, [
                  loadId,
                  r.line,
                  r.column_name,
                  r.value,
                  r.rule,
                  r.message,
                  r.raw,
                ]);
              }
              if (options.dryRun) {
                const row = counts.rows[0];
                await client.query(
                  `update ferry.loads set inserted = $2, updated = $3, unchanged = $4, parse_rejects = $5,
                 rows_rejected = $6, duplicates = $7 where id = $1`,
                  [
                    loadId,
                    row.inserted,
                    row.updated,
                    row.unchanged,
                    row.parse_rejects,
                    row.rows_rejected,
                    row.duplicates,
                  ],
                );
              }
              return limitAfter ?? 'dry_run';
            }
            if (options.sync) {
              // The sync's cursor moves in the transaction that promotes what it pulled.
              const { rows: synced } = await client.query<{ outcome: SyncOutcome }>(
                'select ferry.finish_sync($1) as outcome',
                [loadId],
              );
              syncOutcome = synced[0].outcome;
            }
            await client.query(`select ferry.set_status($1, 'succeeded')`, [loadId]);
            return 'succeeded';
          },
          { tenantCode: true },
        );
      });
      if (outcome === 'succeeded' || outcome === 'dry_run') finalStatus = outcome;
      else failure = outcome;
    }
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
    if (error instanceof LoadsStopping) {
      return { ...base, status: 'failed', counts: NO_COUNTS, reasons: [], timings, error: failure, resumable: true };
    }
    if (error instanceof LoadCancelled) finalStatus = 'cancelled';
    if (error instanceof PgferryError && error.location.file) {
      const { file, line, column } = error.location;
      failure = `${[file, line, column].filter((part) => part !== undefined).join(':')}: ${failure}`;
    }
    if (isTransient(error)) {
      // Still failing after the retries (the server down for long): the load keeps its state
      // and its staging, and shows as interrupted once this process ends.
      return {
        ...base,
        status: 'failed',
        counts: NO_COUNTS,
        reasons: [],
        timings,
        error: `${failure} (retried ${RETRY_DELAYS_MS.length} times; when the server answers again: pgferry resume ${loadId})`,
        resumable: true,
      };
    }
  }

  if (finalStatus === 'cancelled') {
    await pool.query(`select ferry.set_status($1, 'cancelled', $2)`, [loadId, 'cancelled: nothing was promoted']);
  } else if (finalStatus !== 'succeeded' && finalStatus !== 'dry_run') {
    await pool.query(`select ferry.set_status($1, 'failed', $2)`, [loadId, failure ?? 'failed']);
  } else if (finalStatus === 'dry_run') {
    await pool.query(`select ferry.set_status($1, 'dry_run')`, [loadId]);
  }
  // A dry run leaves nothing behind, --keep-staging or not.
  if (!options.keepStaging || options.dryRun) {
    await timed('cleanup', () => pool.query('select ferry.cleanup_load($1)', [loadId]));
  }

  await pool.query('select ferry.record_timing($1, t.key, t.value::numeric) from jsonb_each($2::jsonb) as t', [
    loadId,
    JSON.stringify(timings),
  ]);
  const result: LoadResult = {
    ...base,
    status: finalStatus,
    counts: await loadCounts(pool, loadId),
    reasons: await rejectReasons(pool, loadId),
    timings,
    error: failure,
    ...(syncOutcome && { sync: syncOutcome }),
  };
  await recordAudit(pool, {
    command: 'load',
    tenant: options.tenant,
    loadId,
    outcome: result.status,
    details: { counts: result.counts, error: failure },
  });
  if (options.dryRun) {
    // A dry run leaves no trace but its audit line.
    await pool.query('delete from ferry.loads where id = $1', [loadId]);
  }
  return result;
}

/** stage, for the file's format: CSV on `jobs` parallel streams, other formats on one. */
async function stageFile(
  pool: pg.Pool,
  run: LoadRun,
  stagingTable: string,
  from: LoadRun['from'],
): Promise<{ rowsRead: number }> {
  const { loadId, file, source, options, emit } = run;
  const progress = (totalBytes: number) => (p: { bytesRead: number; rowsRead: number }) =>
    emit({ type: 'stage-progress', bytesRead: p.bytesRead, totalBytes, rowsRead: p.rowsRead });
  // What staging needs whatever the format: where to write, and where to go on from.
  const staging = {
    loadId,
    stagingTable,
    chunkRows: options.chunkRows,
    resumeAfterLine: from.afterLine,
    alreadyStaged: from.rowsStaged,
  };
  try {
    if (source.format === 'postgres' || source.format === 'mysql') {
      return await stageFromDatabase(pool, run, staging);
    }
    if (source.format === 'csv') {
      const opened = await openCsvBytes(file, source);
      try {
        return await withClients(pool, run.jobs, (clients) =>
          stageCsv(clients, {
            ...staging,
            chunks: opened.items,
            bytesRead: opened.bytesRead,
            delimiter: source.delimiter!,
            columns: run.columns.length,
            encoding: source.encoding,
            onProgress: progress(opened.totalBytes),
          }),
        );
      } finally {
        opened.close();
      }
    }
    const opened = await openSourceItems(file, source);
    try {
      // Parsing in Node is what limits these formats, not COPY: one stream.
      return await withClients(pool, 1, ([client]) =>
        stageRecords(client, {
          ...staging,
          items: opened.items,
          columns: source.columns,
          bytesRead: opened.bytesRead,
          onProgress: progress(opened.totalBytes),
        }),
      );
    } finally {
      opened.close();
    }
  } catch (error) {
    throw asSourceError(error, file);
  }
}

/** stage, from a source database (load --from). */
async function stageFromDatabase(
  pool: pg.Pool,
  run: LoadRun,
  staging: { loadId: number; stagingTable: string },
): Promise<{ rowsRead: number }> {
  const { source } = run;
  if (!run.sourceUrl) throw new PgferryError(`load ${run.loadId} reads ${source.from}, whose URL this process lacks`);
  return withClients(pool, 1, ([client]) =>
    stageFromDatabaseQuery(client, {
      ...staging,
      kind: source.format as 'postgres' | 'mysql',
      url: run.sourceUrl!,
      display: source.from ?? source.format,
      query: source.query!,
      connection: run.sourceSession?.take(),
      columns: source.columns,
      onProgress: (p) => run.emit({ type: 'stage-progress', bytesRead: 0, totalBytes: 0, rowsRead: p.rowsRead }),
    }),
  );
}

/** The layout without what only pgferry needs. */
function sourceSummary(layout: SourceLayout): SourceSummary {
  const { columns: _columns, letters: _letters, bomBytes: _bom, ...summary } = layout;
  return summary;
}

async function stagingTableOf(pool: pg.Pool, loadId: number): Promise<string> {
  const { rows } = await pool.query<{ table: string }>(
    `select ferry.quoted_object(t.schema_name, 'stage', $1) as table from ferry.tenants t where t.id = (ferry.load_tenant($1)).id`,
    [loadId],
  );
  return rows[0].table;
}

/** An unknown tenant is an input error, reported before anything is registered; then the mapping's version. */
async function checkTenantAndRegisterMapping(
  pool: pg.Pool,
  tenant: string,
  mapping: Mapping,
): Promise<{ id: number; version: number }> {
  await pool.query('select ferry.tenant($1)', [tenant]).catch((e) => {
    throw asUserError(e);
  });
  return registerMapping(pool, mapping);
}

async function registerMapping(pool: pg.Pool, mapping: Mapping): Promise<{ id: number; version: number }> {
  try {
    const { rows } = await pool.query<{ id: number; version: number }>(
      'select id, version from ferry.register_mapping($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
      [
        mapping.name,
        mapping.source,
        mapping.sha256,
        path.resolve(mapping.path),
        mapping.target,
        mapping.keyColumns,
        mapping.onConflict,
        mapping.duplicates,
        JSON.stringify(mapping.checks),
        mapping.selectSql,
        mapping.selectLine,
      ],
    );
    return rows[0];
  } catch (error) {
    throw asUserError(error, { file: mapping.path, line: mapping.headerLines.target });
  }
}

/** prepare_staging + compile_load in one transaction; a mapping error fails the load. */
async function compile(pool: pg.Pool, loadId: number, mapping: Mapping, columns: string[]): Promise<string> {
  try {
    return await withTransaction(
      pool,
      async (client) => {
        const { rows } = await client.query<{ table: string }>('select ferry.prepare_staging($1, $2) as table', [
          loadId,
          columns,
        ]);
        await client.query('select ferry.compile_load($1)', [loadId]);
        return rows[0].table;
      },
      { tenantCode: true },
    );
  } catch (error) {
    const userError = mappingCompileError(error, mapping, columns);
    await pool.query(`select ferry.set_status($1, 'failed', $2)`, [loadId, describeForCatalog(userError)]);
    await pool.query('select ferry.cleanup_load($1)', [loadId]).catch(() => {});
    throw userError;
  }
}

function mappingCompileError(error: unknown, mapping: Mapping, columns: string[]): unknown {
  if (!isDatabaseError(error)) return error;
  const at = locateInMapping(mapping, error.internalQuery, error.internalPosition);
  let hint = error.hint;
  if (error.code === '42703') {
    hint = `the staged columns are: ${columns.map((c) => JSON.stringify(c)).join(', ')}`;
  }
  if (error.code === '42501') {
    hint = 'a mapping runs as the tenant: it may read only tables protected with `pgferry tenant protect`';
  }
  return new PgferryError(`mapping ${mapping.name}: ${error.message}`, {
    location: at ?? { file: mapping.path, line: mapping.selectLine },
    hint,
    cause: error,
  });
}

function mappingRuntimeError(error: unknown, mapping: Mapping): unknown {
  if (!isDatabaseError(error) || isTransient(error)) return error;
  return new PgferryError(`mapping ${mapping.name} failed while running: ${error.message}`, {
    exitCode: EXIT.loadFailed,
    location: { file: mapping.path, line: mapping.selectLine },
    hint: 'values that make the mapping fail (casts, division) only reject their line; this error is not about a value',
    cause: error,
  });
}

function describeForCatalog(error: unknown): string {
  if (error instanceof PgferryError && error.location.file) {
    return `${error.location.file}:${error.location.line ?? ''}: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function thresholdProblem(rejected: number, read: number, options: LoadOptions): string | undefined {
  if (options.maxRejects !== undefined && rejected > options.maxRejects) {
    return `${rejected} rows rejected, more than --max-rejects ${options.maxRejects}: nothing was promoted`;
  }
  if (options.maxRejectRate !== undefined && read > 0 && rejected / read > options.maxRejectRate) {
    return `${((rejected / read) * 100).toFixed(2)}% of rows rejected, more than --max-reject-rate ${(options.maxRejectRate * 100).toFixed(2)}%: nothing was promoted`;
  }
  return undefined;
}

/** Statuses a load does not leave. */
export const ENDED_STATUSES: ReadonlySet<string> = new Set([
  'succeeded',
  'failed',
  'dry_run',
  'rolled_back',
  'cancelled',
]);

/** The counts of a load as the catalog has them. */
export async function loadCounts(pool: pg.Pool | pg.ClientBase, loadId: number): Promise<LoadCounts> {
  const { rows } = await pool.query('select * from ferry.loads where id = $1', [loadId]);
  return countsOfLoadRow(rows[0]);
}

/** The counts of a ferry.loads row (its columns rows_read, rows_staged, …). */
export function countsOfLoadRow(l: Record<string, unknown>): LoadCounts {
  return {
    read: Number(l.rows_read),
    staged: Number(l.rows_staged),
    parseRejects: Number(l.parse_rejects),
    rejected: Number(l.rows_rejected),
    duplicates: Number(l.duplicates),
    inserted: Number(l.inserted),
    updated: Number(l.updated),
    unchanged: Number(l.unchanged),
  };
}

/** The most frequent reject reasons of a load. */
export async function rejectReasons(pool: pg.Pool, loadId: number, limit = 10): Promise<RejectReason[]> {
  const { rows } = await pool.query<RejectReason>(
    `select rule, column_name as column, count(*)::integer as count, min(message) as example
     from ferry.rejects
     where load_id = $1
     group by rule, column_name
     order by count(*) desc, rule
     limit $2`,
    [loadId, limit],
  );
  return rows;
}

async function withClients<T>(pool: pg.Pool, count: number, fn: (clients: pg.PoolClient[]) => Promise<T>): Promise<T> {
  const clients: pg.PoolClient[] = [];
  let failed = false;
  try {
    for (let i = 0; i < count; i++) clients.push(await pool.connect());
    return await fn(clients);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // After a failure a connection may be broken: closed, not returned to the pool.
    for (const client of clients) client.release(failed);
  }
}

export const MAX_JOBS = 8;

/** Pauses before the retries of a step that failed for a passing reason (4 retries, 15 s). */
const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];

/** Where staging goes on after a crash or a lost connection: after the load's checkpoint. */
export async function stagingCheckpoint(
  pool: pg.Pool,
  loadId: number,
): Promise<{ step: 'stage'; afterLine: number; rowsStaged: number }> {
  const { rows } = await pool.query<{ checkpoint_line: string; rows_staged: string }>(
    'select * from ferry.resume_staging($1)',
    [loadId],
  );
  return { step: 'stage', afterLine: Number(rows[0].checkpoint_line), rowsStaged: Number(rows[0].rows_staged) };
}

/** Whether a server crash emptied the load's staging table since its checkpoint. */
export async function stagingLost(pool: pg.Pool, loadId: number): Promise<boolean> {
  const { rows } = await pool.query<{ lost: boolean }>('select ferry.staging_lost($1) as lost', [loadId]);
  return rows[0].lost;
}

export function stagingJobs(jobs: number | undefined): number {
  if (jobs === undefined) return Math.min(os.availableParallelism(), MAX_JOBS);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > MAX_JOBS) {
    throw new PgferryError(`jobs must be a whole number from 1 to ${MAX_JOBS}, not ${jobs}`);
  }
  return jobs;
}

/** Which part of a file a load reads (a sheet, a zip entry, a dump's table, JSON or XML records), as asked. */
export type SourcePart = Pick<SourceOptions, 'sheet' | 'entry' | 'table' | 'records'>;

export function sourcePart(options: SourceOptions): SourcePart {
  const { sheet, entry, table, records } = options;
  return { sheet, entry, table, records };
}

/**
 * The sha256 a load records for its file: the file's own, or — when it reads one part of the
 * file, such as a sheet — a sha256 of the file's and the part's, so that another sheet of the
 * same workbook is not taken for a file already loaded.
 */
export function partSha256(fileSha: string, part: SourcePart | undefined): string {
  const named = Object.entries(part ?? {}).filter(([, value]) => value !== undefined && value !== null);
  if (named.length === 0) return fileSha;
  return createHash('sha256')
    .update(`${fileSha}\n${JSON.stringify(Object.fromEntries(named.map(([k, v]) => [k, String(v)])))}`)
    .digest('hex');
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
