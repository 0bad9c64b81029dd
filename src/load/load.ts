import { stat } from 'node:fs/promises';
import path from 'node:path';

import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { enqueueLoad } from '../jobs/queue.js';
import { type Mapping, readMapping } from '../mappings/mapping-file.js';
import { databaseLayout, readDatabaseLayout } from '../sources/database/database-layout.js';
import { sourceQuery } from '../sources/database/database-query.js';
import { resolveDatabaseSource } from '../sources/database/database-url.js';
import { SourceSession } from '../sources/database/source-session.js';
import { refuseBadDelimiter } from '../sources/file/csv/delimiter-option.js';
import { readSourceLayout } from '../sources/file/read-source-layout.js';
import { stagedColumnNames } from '../sources/staged-column-names.js';
import { LoadClaim } from './claim.js';
import { fileSha256, partSha256, sourcePart } from './file-sha256.js';
import { NO_COUNTS } from './load-counts.js';
import {
  checkTenantAndRegisterMapping,
  FileAlreadyLoaded,
  forgetDryRunMapping,
  type RegisteredMapping,
  type RegisteredSource,
  registerLoad,
} from './register.js';
import { runLoad } from './run.js';
import { sourceSummary } from './source-summary.js';
import { stagingJobs } from './staging-jobs.js';
import { refuseTooWideForStaging } from './staging-width.js';
import type { LoadEvent, LoadOptions, LoadResult } from './types.js';

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
  refuseBadDelimiter(options.delimiter);

  const mappingRow = await checkTenantAndRegisterMapping(pool, options.tenant, mapping);
  try {
    return await loadFile(pool, options, mapping, mappingRow, jobs, emit, file, fileStat.size);
  } finally {
    // A dry run leaves no trace: not even a mapping version of its own.
    if (options.dryRun) await forgetDryRunMapping(pool, mappingRow);
  }
}

/** A file's load, its tenant and mapping checked. */
async function loadFile(
  pool: pg.Pool,
  options: LoadOptions,
  mapping: Mapping,
  mappingRow: RegisteredMapping,
  jobs: number,
  emit: (event: LoadEvent) => void,
  file: string,
  bytes: number,
): Promise<LoadResult> {
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
  try {
    return await registerAndRun(pool, options, {
      mapping,
      mappingRow,
      jobs,
      emit,
      source: path.resolve(file),
      file,
      sha256,
      bytes,
      layout,
      extra: { part },
    });
  } catch (error) {
    // Another load of the file registered first (the look above raced with it).
    if (!(error instanceof FileAlreadyLoaded)) throw error;
    return {
      status: 'skipped',
      previousLoadId: error.previousLoadId,
      previousLoadRunning: error.running || undefined,
      mapping: { name: mapping.name, version: mappingRow.version },
      file,
      counts: NO_COUNTS,
      reasons: [],
      timings: {},
    };
  }
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
    try {
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
      if (options.dryRun) await forgetDryRunMapping(pool, mappingRow);
    }
  } finally {
    if (session !== options.sourceSession) await session.end();
  }
}

/** Registers a load whose source is read and described, then queues it, or claims it and runs it. */
async function registerAndRun(
  pool: pg.Pool,
  options: LoadOptions,
  load: RegisteredSource & {
    mapping: Mapping;
    mappingRow: RegisteredMapping;
    jobs: number;
    emit: (event: LoadEvent) => void;
    file: string;
    sourceUrl?: string;
    sourceSession?: SourceSession;
  },
): Promise<LoadResult> {
  const { layout } = load;
  refuseTooWideForStaging(layout, load.file);
  const loadId = await registerLoad(pool, options, load.mappingRow.id, load);
  if (options.queue) {
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
  const claim = await LoadClaim.take(pool, loadId, options.claimSession, options.runner);
  // Nobody else can know the claim's key of a load just registered; should it be held all the
  // same, the load stops here, cleanly, rather than running unclaimed.
  if (!claim) throw new PgferryError(`load ${loadId} was claimed by another session as soon as it was registered`);
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
      columns: stagedColumnNames(layout.columns),
      jobs: load.jobs,
      options,
      emit: load.emit,
      claim,
      from: { step: 'compile' },
    });
  } catch (error) {
    // A dry run whose mapping failed to compile leaves no failed load behind.
    // Tidying up must not hide why the load failed: a row it cannot delete stays, failed.
    if (options.dryRun) await pool.query('delete from ferry.loads where id = $1', [loadId]).catch(() => {});
    throw error;
  } finally {
    await claim.release();
  }
}
