import { runMigrations } from 'graphile-worker';
import type pg from 'pg';

import { workerLogger } from './worker-logger.js';

/** graphile-worker's task names for pgferry's jobs. */
export const TASKS = {
  load: 'pgferry_load',
  sync: 'pgferry_sync',
  planStep: 'pgferry_plan_step',
} as const;

/** Tries of a job whose failure was passing (graphile-worker backs off exponentially). */
export const MAX_ATTEMPTS = 8;

/** graphile-worker's own messages: errors only, one line each (pgferry reports what its jobs do itself). */
export const quietLogger = workerLogger();

const installed = new WeakSet<pg.Pool>();

/** Installs (or upgrades) graphile-worker's schema, once per pool. */
export async function ensureQueueSchema(pool: pg.Pool): Promise<void> {
  if (installed.has(pool)) return;
  await runMigrations({ pgPool: pool, logger: quietLogger });
  installed.add(pool);
}

/**
 * Loads of one tenant into one table share a queue (graphile-worker runs a queue's jobs one
 * at a time); others run side by side, up to the worker's concurrency.
 */
export function queueName(tenant: string, target: string): string {
  return `pgferry:${tenant}:${target}`;
}

/** Queues a registered load (status `queued`) for a worker. */
export async function enqueueLoad(pool: pg.Pool, loadId: number): Promise<void> {
  await ensureQueueSchema(pool);
  const { rows } = await pool.query<{ tenant: string; target: string }>(
    `update ferry.loads l set status = 'queued', queued_by = $2
     from ferry.tenants t, ferry.mappings m
     where l.id = $1 and t.id = l.tenant_id and m.id = l.mapping_id
     returning t.slug as tenant, m.target_schema || '.' || m.target_table as target`,
    [loadId, process.env.USER ?? null],
  );
  await addJob(pool, TASKS.load, { loadId }, queueName(rows[0].tenant, rows[0].target), `${TASKS.load}:${loadId}`);
}

export async function addJob(
  pool: pg.Pool | pg.ClientBase,
  task: string,
  payload: object,
  queue: string | null,
  jobKey: string | null,
): Promise<void> {
  await pool.query(
    'select graphile_worker.add_job($1, $2::json, queue_name => $3, job_key => $4, max_attempts => $5)',
    [task, JSON.stringify(payload), queue, jobKey, MAX_ATTEMPTS],
  );
}
