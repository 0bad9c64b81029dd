import type pg from 'pg';

/**
 * Whether a pgferry worker runs on this database: each holds an advisory lock of the
 * installation's worker class while it lives (worker-liveness.ts).
 */
export async function workerIsRunning(db: pg.Pool | pg.ClientBase): Promise<boolean> {
  const { rows } = await db.query<{ running: boolean }>(
    `select exists (
       select from pg_locks l
       where l.locktype = 'advisory' and l.granted and l.objsubid = 2
         and l.database = (select oid from pg_database where datname = current_database())
         and l.classid = ferry.worker_lock_class()::oid
     ) as running`,
  );
  return rows[0].running;
}
