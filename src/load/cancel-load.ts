import os from 'node:os';

import type pg from 'pg';

import { TASKS } from '../jobs/queue.js';
import { followLoad } from '../report/follow-load.js';

export interface CancelOptions {
  /** Wait for a running load to stop, and report how it ended. (Default: true) */
  wait?: boolean;
  /** Who asks, written into the load's error. (Default: the OS user) */
  osUser?: string;
  /** Called once a running load has been asked to stop, before waiting for it (with `wait`). */
  onWaiting?: () => void;
}

/**
 * What a cancel did:
 * - `cancelled`: nobody ran the load (queued, or interrupted): it is cancelled, its job removed;
 * - `already_ended`: it had ended before (`status`: succeeded, failed, …), nothing changed;
 * - `requested`: it is running and was asked to stop at its next batch (`wait: false`);
 * - `stopped`: it was asked to stop and has ended since (`status`: `cancelled`, or what it
 *   ended with when it finished before it could stop).
 */
export type CancelResult =
  | { loadId: number; outcome: 'cancelled' }
  | { loadId: number; outcome: 'already_ended'; status: string }
  | { loadId: number; outcome: 'requested' }
  | { loadId: number; outcome: 'stopped'; status: string };

/**
 * `pgferry cancel`: cancels a queued load at once; asks a running one to stop at its next
 * batch (it then rolls back: nothing promoted) and, unless `wait: false`, waits until it has
 * ended. An unknown load is an error (SQLSTATE 42704).
 *
 * @example
 *   const cancelled = await cancelLoad(pool, 42);
 *   if (cancelled.outcome === 'stopped') console.log(`load 42 ended ${cancelled.status}`);
 */
export async function cancelLoad(pool: pg.Pool, loadId: number, options: CancelOptions = {}): Promise<CancelResult> {
  const { rows } = await pool.query<{ done: string }>('select ferry.request_cancel($1, $2) as done', [
    loadId,
    options.osUser ?? os.userInfo().username,
  ]);
  const done = rows[0].done;
  if (done === 'cancelled') {
    // Its job finds it cancelled and does nothing; removed so that it does not linger.
    await pool.query('select graphile_worker.remove_job($1)', [`${TASKS.load}:${loadId}`]).catch(() => {});
    return { loadId, outcome: 'cancelled' };
  }
  if (done !== 'requested') return { loadId, outcome: 'already_ended', status: done.replace(/^ended /, '') };
  if (options.wait === false) return { loadId, outcome: 'requested' };
  options.onWaiting?.();
  const final = await followLoad(pool, loadId, { onChange: () => {} });
  return { loadId, outcome: 'stopped', status: final.status };
}
