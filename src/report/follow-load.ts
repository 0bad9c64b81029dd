import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { workerIsRunning } from '../jobs/worker-running.js';
import { ENDED_STATUSES } from '../load/ended-statuses.js';
import { countsOfLoadRow } from '../load/load-counts.js';
import type { LoadCounts } from '../load/types.js';

/** Where `ferry.set_status` and `ferry.report_progress` say a load changed (payload: its id). */
const CHANNEL = 'pgferry_load';

/**
 * An `interrupted` load is seen twice, this far apart, before it counts: a load is registered
 * a moment before its process (or a queue's worker) claims it, and shows as interrupted then.
 */
const INTERRUPTED_CONFIRM_MS = 300;

/** What a running load wrote to ferry.load_progress last. */
export interface LoadProgress {
  /** The step it reported: stage, transform, promote, … */
  step: string;
  /** How far: bytes read while staging, rows promoted while promoting. */
  done: number;
  total: number;
  rows: number;
  worker: string | null;
  updatedAt: Date;
}

/** A load as `pgferry status LOAD --follow` watches it. */
export interface LoadSnapshot {
  loadId: number;
  /** As ferry.load_status() shows it: `interrupted` for a load in progress whose process is gone. */
  status: string;
  error: string | null;
  counts: LoadCounts;
  /** None before the load reports any. */
  progress: LoadProgress | null;
  /** A queued load: whether a pgferry worker runs on the database to take it (else it waits for one). */
  workerRunning?: boolean;
}

/** The snapshot followLoad() ends with: the load ended, or was interrupted (it won't move by itself). */
export interface FinalSnapshot extends LoadSnapshot {
  interrupted: boolean;
}

export interface FollowOptions {
  /** Called with the first snapshot and with every one that differs from the one before. */
  onChange: (snapshot: LoadSnapshot) => void;
  /** Stops following: followLoad() then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** How often to read the load even without a notification (default 2000 ms). */
  pollMs?: number;
}

/**
 * Follows a load until it ends (or is seen interrupted): listens on `pgferry_load` on a
 * connection of its own from the pool, reads the load and its progress on each notification
 * about it, and every pollMs in case one was missed (a process that dies notifies nothing).
 * A PgferryError when there is no such load.
 */
export async function followLoad(pool: pg.Pool, loadId: number, options: FollowOptions): Promise<FinalSnapshot> {
  const { signal, onChange } = options;
  const pollMs = options.pollMs ?? 2000;
  signal?.throwIfAborted();
  const client = await pool.connect();

  let notified = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const onNotification = (message: pg.Notification) => {
    if (message.channel !== CHANNEL || message.payload !== String(loadId)) return;
    notified = true;
    wake?.();
  };
  const onError = (error: Error) => {
    failure ??= error;
    wake?.();
  };
  const onAbort = () => wake?.();
  client.on('notification', onNotification);
  client.on('error', onError);
  signal?.addEventListener('abort', onAbort);

  /** Sleeps ms, or less when a notification, an error or the abort comes first. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wake = done;
      if (notified || failure || signal?.aborted) done();
    });

  let usable = true;
  try {
    await client.query(`listen ${CHANNEL}`);
    let last: string | undefined;
    let interruptedSeen = false;
    for (;;) {
      // A notification that comes while reading means: read again.
      notified = false;
      const snapshot = await readSnapshot(client, loadId);
      const interrupted = snapshot.status === 'interrupted';
      // An unconfirmed `interrupted` is not news yet.
      if (!interrupted || interruptedSeen) {
        const key = JSON.stringify(snapshot);
        if (key !== last) {
          last = key;
          onChange(snapshot);
        }
      }
      if (ENDED_STATUSES.has(snapshot.status)) return { ...snapshot, interrupted: false };
      if (interrupted && interruptedSeen) return { ...snapshot, interrupted: true };
      interruptedSeen = interrupted;
      await pause(interrupted ? Math.min(pollMs, INTERRUPTED_CONFIRM_MS) : pollMs);
      if (failure) throw failure;
      signal?.throwIfAborted();
    }
  } catch (error) {
    if (failure) usable = false;
    throw error;
  } finally {
    client.off('notification', onNotification);
    signal?.removeEventListener('abort', onAbort);
    if (usable) {
      try {
        await client.query(`unlisten ${CHANNEL}`);
      } catch {
        usable = false;
      }
    }
    client.off('error', onError);
    // A broken connection is closed rather than given back to the pool.
    client.release(usable ? undefined : true);
  }
}

async function readSnapshot(client: pg.ClientBase, loadId: number): Promise<LoadSnapshot> {
  const { rows } = await client.query(
    `select ferry.load_status(l) as status, l.error, l.rows_read, l.rows_staged, l.parse_rejects, l.rows_rejected,
            l.duplicates, l.inserted, l.updated, l.unchanged,
            p.step, p.done, p.total, p.rows, p.worker, p.updated_at
     from ferry.loads l
     left join ferry.load_progress p on p.load_id = l.id
     where l.id = $1`,
    [loadId],
  );
  if (rows.length === 0) throw new PgferryError(`no load ${loadId}`, { hint: 'pgferry loads lists them' });
  const r = rows[0];
  return {
    loadId,
    ...(r.status === 'queued' && { workerRunning: await workerIsRunning(client) }),
    status: r.status,
    error: r.error,
    counts: countsOfLoadRow(r),
    progress:
      r.step === null
        ? null
        : {
            step: r.step,
            done: Number(r.done),
            total: Number(r.total),
            rows: Number(r.rows),
            worker: r.worker,
            updatedAt: r.updated_at,
          },
  };
}
