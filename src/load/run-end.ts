import type pg from 'pg';

import { recordAudit } from '../audit.js';
import { listRejects } from '../catalog.js';
import { withTransaction } from '../db/database.js';
import { isDatabaseError, isTransient, PgferryError, SQLSTATE } from '../errors.js';
import { LoadCancelled, LoadsStopping, LoadTakenOver } from './interruption.js';
import { loadCounts, NO_COUNTS } from './load-counts.js';
import type { LoadRun } from './load-run.js';
import type { LoadSteps } from './load-steps.js';
import { rejectReasons } from './reject-reasons.js';
import { RETRY_DELAYS_MS, retryStep } from './retry-step.js';
import { sourceSummary } from './source-summary.js';
import type { LoadResult, SyncOutcome } from './types.js';

/**
 * How a run of a load ended. `resumable`: it stopped with its state and staging kept (the
 * process stopping, the server unreachable for long) and `pgferry resume` finishes it.
 */
export interface RunEnd {
  status: 'succeeded' | 'dry_run' | 'failed' | 'cancelled';
  failure?: string;
  sync?: SyncOutcome;
  resumable?: boolean;
  /** Another process took the load over: this one writes nothing more (not even its status). */
  takenOver?: boolean;
  /** The audit line was written already, in the promoting transaction. */
  audited?: boolean;
}

/** Whether an error says that another process took the load over (ferry.check_claim). */
export function isTakenOver(error: unknown): boolean {
  return error instanceof LoadTakenOver || (isDatabaseError(error) && error.code === SQLSTATE.claimTakenOver);
}

/** What an error thrown by a step means for the load. */
export function runEndOf(error: unknown, loadId: number): RunEnd {
  let failure = error instanceof Error ? error.message : String(error);
  if (error instanceof LoadsStopping) return { status: 'failed', failure, resumable: true };
  if (isTakenOver(error)) return { status: 'failed', failure, takenOver: true };
  if (error instanceof PgferryError && error.location.file) {
    const { file, line, column } = error.location;
    failure = `${[file, line, column].filter((part) => part !== undefined).join(':')}: ${failure}`;
  }
  if (isTransient(error)) {
    // Still failing after the retries (the server down for long): the load keeps its state
    // and its staging, and shows as interrupted once this process ends.
    return {
      status: 'failed',
      failure: `${failure} (retried ${RETRY_DELAYS_MS.length} times; when the server answers again: pgferry resume ${loadId})`,
      resumable: true,
    };
  }
  return { status: error instanceof LoadCancelled ? 'cancelled' : 'failed', failure };
}

/**
 * Ends a run: records its status, cleans up (unless staging is kept), writes its timings and
 * audit line, and returns its result. A resumable end leaves the catalog as it is.
 */
export async function endRun(
  pool: pg.Pool,
  run: LoadRun,
  end: RunEnd,
  steps: Pick<LoadSteps, 'timings' | 'cleanup'>,
): Promise<LoadResult> {
  const { loadId, options } = run;
  const base = {
    loadId,
    mapping: { name: run.mapping.name, version: run.mappingVersion },
    file: run.file,
    delimiter: run.source.delimiter,
    source: sourceSummary(run.source),
  };
  const { timings } = steps;
  if (end.resumable) {
    return { ...base, status: 'failed', counts: NO_COUNTS, reasons: [], timings, error: end.failure, resumable: true };
  }
  const takenOver = end.takenOver ? end.failure : await retryStep(run, 'cleanup', () => writeEndStatus(pool, run, end));
  if (takenOver !== undefined) {
    return { ...base, status: 'failed', counts: NO_COUNTS, reasons: [], timings, error: takenOver };
  }
  // What follows only records the end, each part retried after a passing failure (a lost
  // connection): a load that committed must not end in an exception, nor without its audit line.
  const result = await retryStep(run, 'cleanup', async (): Promise<LoadResult> => {
    // A dry run leaves nothing behind, --keep-staging or not.
    if (!options.keepStaging || options.dryRun) await steps.cleanup();
    await pool.query('select ferry.record_timing($1, t.key, t.value::numeric) from jsonb_each($2::jsonb) as t', [
      loadId,
      JSON.stringify(timings),
    ]);
    return {
      ...base,
      status: end.status,
      counts: await loadCounts(pool, loadId),
      reasons: await rejectReasons(pool, loadId),
      timings,
      error: end.failure,
      ...(end.sync && { sync: end.sync }),
      // A dry run's rejects go with its load: the result keeps every one.
      ...(options.dryRun && { rejects: await listRejects(pool, loadId) }),
    };
  });
  if (!end.audited)
    await retryStep(run, 'cleanup', () =>
      recordAudit(pool, {
        command: 'load',
        tenant: options.tenant,
        loadId,
        outcome: result.status,
        details: { counts: result.counts, error: end.failure },
      }),
    );
  if (options.dryRun) {
    // A dry run leaves no trace but its audit line.
    await retryStep(run, 'cleanup', () => pool.query('delete from ferry.loads where id = $1', [loadId]));
  }
  return result;
}

/**
 * Records how the run ended (a succeeded one recorded it in its promotion), fenced: if another
 * process took the load over, nothing is written and the error's message is returned.
 */
async function writeEndStatus(pool: pg.Pool, run: LoadRun, end: RunEnd): Promise<string | undefined> {
  const { loadId } = run;
  if (end.status === 'succeeded') return undefined;
  try {
    await withTransaction(pool, async (client) => {
      await client.query('select ferry.check_claim($1, $2)', [loadId, run.claim.epoch]);
      if (end.status === 'cancelled') {
        await client.query(`select ferry.set_status($1, 'cancelled', $2)`, [loadId, 'cancelled: nothing was promoted']);
      } else if (end.status === 'failed') {
        await client.query(`select ferry.set_status($1, 'failed', $2)`, [loadId, end.failure ?? 'failed']);
      } else if (end.status === 'dry_run') {
        await client.query(`select ferry.set_status($1, 'dry_run')`, [loadId]);
      }
    });
    return undefined;
  } catch (error) {
    if (isTakenOver(error)) return (error as Error).message;
    throw error;
  }
}
