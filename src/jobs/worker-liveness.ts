import pg from 'pg';

/**
 * Telling a live worker from a dead one without graphile-worker's 4-hour lock timeout: each
 * worker of this process holds a session advisory lock keyed on its id on a connection of
 * its own. A job locked by a worker id whose advisory lock nobody holds belongs to a process
 * that died (SIGKILL, a lost machine): its jobs are unlocked for another worker.
 */
export const WORKER_LOCK_CLASS = 1885956983; // 'pgfw' in ASCII, beside the loads' 'pgfo'

export class WorkerLiveness {
  private constructor(private readonly client: pg.Client) {}

  static async open(pool: pg.Pool): Promise<WorkerLiveness> {
    const client = new pg.Client({ ...pool.options, application_name: 'pgferry worker' });
    client.on('error', () => {});
    await client.connect();
    return new WorkerLiveness(client);
  }

  /** Marks a worker (pool) id as alive for as long as this process (this connection) lives. */
  async hold(workerId: string): Promise<void> {
    await this.client.query('select pg_advisory_lock($1, hashtext($2))', [WORKER_LOCK_CLASS, workerId]);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}

/**
 * Unlocks the pgferry jobs of workers that are gone: locked for longer than `graceMs` (a live
 * worker takes its lock as it starts) by a worker id whose advisory lock nobody holds.
 * Returns the dead workers' ids.
 */
export async function unlockDeadWorkers(pool: pg.Pool, graceMs: number): Promise<string[]> {
  const { rows } = await pool.query<{ dead: string[] }>(
    `select coalesce(array_agg(distinct j.locked_by), '{}') as dead
     from graphile_worker._private_jobs j
     join graphile_worker._private_tasks t on t.id = j.task_id
     where j.locked_by is not null
       and j.locked_at < now() - make_interval(secs => $2::double precision / 1000)
       and t.identifier like 'pgferry\\_%'
       and not exists (
         select from pg_locks l
         where l.locktype = 'advisory' and l.granted and l.objsubid = 2
           and l.database = (select oid from pg_database where datname = current_database())
           and l.classid = $1::integer::oid
           and l.objid = hashtext(j.locked_by)::oid
       )`,
    [WORKER_LOCK_CLASS, graceMs],
  );
  const dead = rows[0].dead;
  if (dead.length > 0) await pool.query('select graphile_worker.force_unlock_workers($1)', [dead]);
  return dead;
}
