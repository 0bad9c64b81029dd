import { sql } from 'kysely';
import type pg from 'pg';

import { catalogDb } from './catalog-db.js';

/** The workers of this database and the jobs they hold (`GET /api/workers`). */
export interface DashboardWorkers {
  /** Worker pools alive now: each holds an advisory lock of the installation's worker class. */
  alive: number;
  /** pgferry's jobs a worker has taken: which, since when, and whether that worker still lives. */
  running: { worker: string; task: string; key: string | null; since: Date; attempts: number; alive: boolean }[];
}

/**
 * Which workers live and what they run. A job whose worker is not alive is one a dead
 * process held: the other workers hand it on within seconds (jobs/worker-liveness.ts).
 * Workers span tenants: a dashboard limited to one tenant does not show them.
 *
 * @example
 *   const { alive, running } = await dashboardWorkers(pool);
 */
export async function dashboardWorkers(pool: pg.Pool): Promise<DashboardWorkers> {
  const db = catalogDb(pool);
  const workerLock = sql`l.locktype = 'advisory' and l.granted and l.objsubid = 2
    and l.database = (select oid from pg_database where datname = current_database())
    and l.classid = ferry.worker_lock_class()::oid`;
  const { rows: alive } = await sql<{
    alive: string;
  }>`select count(*) as alive from pg_locks l where ${workerLock}`.execute(db);
  // No worker has ever run here: graphile-worker's schema is installed by the first.
  const { rows: queue } = await sql<{
    jobs: string | null;
  }>`select to_regclass('graphile_worker._private_jobs') as jobs`.execute(db);
  if (queue[0].jobs === null) return { alive: Number(alive[0].alive), running: [] };
  const rows = await db
    .selectFrom('graphile_worker._private_jobs as j')
    .innerJoin('graphile_worker._private_tasks as t', 't.id', 'j.task_id')
    .select(['j.locked_by', 't.identifier', 'j.key', 'j.locked_at', 'j.attempts'])
    .select(
      sql<boolean>`exists (select from pg_locks l where ${workerLock} and l.objid = hashtext(j.locked_by)::oid)`.as(
        'alive',
      ),
    )
    .where('j.locked_by', 'is not', null)
    .where('t.identifier', 'like', 'pgferry\\_%')
    .orderBy('j.locked_at')
    .execute();
  return {
    alive: Number(alive[0].alive),
    running: rows.map((r) => ({
      worker: r.locked_by!,
      task: r.identifier,
      key: r.key,
      since: r.locked_at!,
      attempts: r.attempts,
      alive: r.alive,
    })),
  };
}
