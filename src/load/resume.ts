import { stat } from 'node:fs/promises';

import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { parseMapping } from '../mappings/mapping-file.js';
import { resolveDatabaseSource } from '../sources/database/database-url.js';
import { readSourceLayout } from '../sources/file/read-source-layout.js';
import type { SourceLayout } from '../sources/source-layout.js';
import { stagedColumnNames } from '../sources/staged-column-names.js';
import { LoadClaim } from './claim.js';
import { ENDED_STATUSES } from './ended-statuses.js';
import { fileSha256, partSha256, type SourcePart } from './file-sha256.js';
import type { LoadRun } from './load-run.js';
import { runLoad } from './run.js';
import { stagingJobs } from './staging-jobs.js';
import { cleanup } from './steps/cleanup.js';
import { stagingCheckpoint, stagingLost } from './steps/staging-checkpoint.js';
import type { LoadEvent, LoadOptions, LoadResult, SyncOfLoad } from './types.js';

/** How long resume waits for the claim of a load whose process was just killed. */
const CLAIM_GRACE_MS = 5000;

export interface ResumeOptions {
  /** Parallel COPY streams for what is left to stage. (Default: as `load`) */
  jobs?: number;
  /** Rows per promotion batch. (Default: 10000) */
  batchSize?: number;
  /** Who runs it (a worker's id), shown in the load's progress. */
  runner?: string;
  onEvent?: (event: LoadEvent) => void;
}

export type ResumeResult =
  | {
      outcome: 'resumed';
      /** The step it resumed at: compile (nothing was done), stage (after the checkpoint), transform. */
      from: LoadRun['from']['step'];
      /** The line staging resumed after. */
      checkpointLine: number;
      /** A server crash had emptied the load's UNLOGGED staging: it was staged again from line 1. */
      restaged: boolean;
      result: LoadResult;
    }
  /** It had finished (succeeded or was rolled back): nothing to do. */
  | { outcome: 'finished'; loadId: number; status: string };

interface LoadRow {
  id: string;
  status: string;
  shown: string;
  tenant: string;
  source: string;
  file_sha256: string;
  file_bytes: string;
  options: {
    delimiter?: string;
    source?: SourceLayout;
    part?: SourcePart;
    maxRejects?: number;
    maxRejectRate?: number;
    maxDuplicates?: number;
    maxDuplicateRate?: number;
    maxExpansion?: number;
    expansionCheckedAfter?: number;
    mappingTimeoutMs?: number;
    dryRun?: boolean;
    force?: boolean;
    keepStaging?: boolean;
    batchSize?: number;
    sync?: SyncOfLoad;
  };
  columns: string[] | null;
  error: string | null;
  mapping_source: string;
  mapping_path: string | null;
  mapping_name: string;
  mapping_version: number;
}

/**
 * resume: finishes an interrupted load (its process killed, the server restarted) from where
 * it stopped: staging from its checkpoint (the file is read again, but only later records are
 * sent), then the steps after it. The promotion is one transaction, so the target has either
 * all of the load or none of it. A load that had in fact finished is left as it is.
 *
 * @example
 *   const r = await resume(pool, 42);
 *   if (r.outcome === 'resumed') console.log(r.result.counts);
 */
export async function resume(pool: pg.Pool, loadId: number, options: ResumeOptions = {}): Promise<ResumeResult> {
  const jobs = Math.min(stagingJobs(options.jobs), pool.options.max ?? 10);
  const { rows } = await pool.query<LoadRow>(
    `select l.id, l.status, ferry.load_status(l) as shown, t.slug as tenant, l.source, l.file_sha256,
            l.file_bytes, l.options, l.columns, l.error,
            m.source as mapping_source, m.source_path as mapping_path, m.name as mapping_name,
            m.version as mapping_version
     from ferry.loads l
     join ferry.tenants t on t.id = l.tenant_id
     join ferry.mappings m on m.id = l.mapping_id
     where l.id = $1`,
    [loadId],
  );
  const row = rows[0];
  if (!row) throw new PgferryError(`no load ${loadId}`, { hint: 'pgferry loads lists them' });
  if (row.status === 'succeeded' || row.status === 'rolled_back') {
    // Killed after its promotion committed, it may not have dropped its staging tables.
    await cleanup(pool, loadId);
    return { outcome: 'finished', loadId, status: row.status };
  }
  if (row.status === 'failed' || row.status === 'dry_run' || row.status === 'cancelled') {
    throw new PgferryError(
      `load ${loadId} ended ${row.status}${row.error ? ` (${row.error})` : ''}: it cannot be resumed`,
      {
        hint: 'load the file again',
      },
    );
  }
  // A queued load has not started: whoever claims it runs it.
  if (row.status === 'queued') row.shown = 'interrupted';
  // A process killed a moment ago: the server notices its closed connection within moments.
  for (let waited = 0; row.shown !== 'interrupted' && waited < CLAIM_GRACE_MS; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { rows: now } = await pool.query<{ shown: string }>(
      'select ferry.load_status(l) as shown from ferry.loads l where id = $1',
      [loadId],
    );
    row.shown = now[0].shown;
  }
  if (row.shown !== 'interrupted') {
    throw new PgferryError(`load ${loadId} is ${row.status} in a running process: it cannot be resumed`, {
      hint: 'pgferry loads shows it as interrupted once its process is gone',
    });
  }
  // Waits for a promotion in flight of a process that lost its claim: the load is then found
  // succeeded below; or that promotion, fenced by the epoch this raises, refuses to commit.
  const claim = await LoadClaim.take(pool, loadId, undefined, options.runner);
  if (!claim) throw new PgferryError(`load ${loadId} was just claimed by another process`);
  try {
    // Cancelled (or finished) between the look above and the claim.
    const { rows: now } = await pool.query<{ status: string }>('select status from ferry.loads where id = $1', [
      loadId,
    ]);
    if (ENDED_STATUSES.has(now[0].status)) {
      return { outcome: 'finished', loadId, status: now[0].status };
    }
    const file = row.source;
    const database = row.options.source?.from;
    // A source database is read again from its start; its URL is known only from the
    // environment (pgferry never keeps a password).
    const sourceUrl = database === undefined ? undefined : databaseUrlToResume(loadId, database);
    const fileStat = database === undefined ? await stat(file).catch(() => undefined) : undefined;
    if (database === undefined && !fileStat?.isFile()) {
      throw new PgferryError(`load ${loadId} read ${file}, which is gone: it cannot be resumed`);
    }
    if (database === undefined && partSha256(await fileSha256(file), row.options.part) !== row.file_sha256) {
      throw new PgferryError(
        `${file} changed since load ${loadId} started (its sha256 differs): it cannot be resumed`,
        {
          hint: 'load the file again',
        },
      );
    }
    // The mapping as the load compiled it, whatever its file says now.
    const mapping = parseMapping(row.mapping_source, row.mapping_path ?? `${row.mapping_name}.sql`);
    const loadOptions: LoadOptions = {
      ...(database === undefined ? { file } : { from: database }),
      tenant: row.tenant,
      mapping: mapping.path,
      delimiter: row.options.delimiter,
      maxRejects: row.options.maxRejects,
      maxRejectRate: row.options.maxRejectRate,
      maxDuplicates: row.options.maxDuplicates,
      maxDuplicateRate: row.options.maxDuplicateRate,
      maxExpansion: row.options.maxExpansion,
      expansionCheckedAfter: row.options.expansionCheckedAfter,
      // A resumed (or worker-run) load keeps the mapping timeout it was started with.
      mappingTimeoutMs: row.options.mappingTimeoutMs,
      dryRun: row.options.dryRun,
      force: row.options.force,
      keepStaging: row.options.keepStaging,
      batchSize: options.batchSize ?? row.options.batchSize,
      sync: row.options.sync,
      runner: options.runner,
      onEvent: options.onEvent,
    };
    let from: LoadRun['from'] = { step: 'compile' };
    let checkpointLine = 0;
    // Asked before resume_staging (below) resets a lost staging; runLoad stages it again.
    const restaged = row.status !== 'registered' && row.status !== 'queued' && (await stagingLost(pool, loadId));
    if (row.status === 'staging') {
      from = await stagingCheckpoint(pool, loadId);
      checkpointLine = from.afterLine ?? 0;
    } else if (row.status !== 'registered' && row.status !== 'queued') {
      from = { step: 'transform' };
    }
    // How the file was read is in the catalog (loads before 0.2 kept only the delimiter).
    const source =
      row.options.source ??
      (await readSourceLayout(file, { delimiter: row.options.delimiter, maxExpansion: row.options.maxExpansion }));
    const columns = row.columns ?? stagedColumnNames(source.columns);
    const result = await runLoad(pool, {
      loadId,
      mapping,
      mappingVersion: row.mapping_version,
      file,
      source,
      sourceUrl,
      columns,
      jobs,
      options: loadOptions,
      emit: options.onEvent ?? (() => {}),
      claim,
      from,
    });
    return { outcome: 'resumed', from: from.step, checkpointLine, restaged, result };
  } finally {
    await claim.release();
  }
}

/** The URL of a load's source database, when it came from the environment (`env:NAME`). */
function databaseUrlToResume(loadId: number, from: string): string {
  if (!from.startsWith('env:')) {
    throw new PgferryError(
      `load ${loadId} read ${from}, and pgferry does not keep a password: it cannot be resumed; load it again`,
      { hint: 'with --from env:NAME (a variable holding the URL), a load from a database can be resumed' },
    );
  }
  return resolveDatabaseSource(from).url;
}
