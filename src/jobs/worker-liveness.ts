import pg from 'pg';

/**
 * Telling a live worker from a dead one without graphile-worker's 4-hour lock timeout: each
 * worker of this process holds a session advisory lock keyed on its id on a connection of
 * its own. A job locked by a worker id whose advisory lock nobody holds belongs to a process
 * that died (SIGKILL, a lost machine): its jobs are unlocked for another worker. The lock is
 * (ferry.worker_lock_class(), hashtext(worker id)): a class derived from the installation's
 * secret, which tenant code cannot name (coordination.sql), and which `uninstall` and
 * `plan run` look for in pg_locks to tell whether a worker runs.
 */

/** How often a lost liveness connection is tried again: well within a sweep's interval. */
const RECONNECT_MS = 250;

export class WorkerLiveness {
  /** The worker ids this process holds, taken again on a new connection after a lost one. */
  private readonly held = new Set<string>();
  private client: pg.Client | undefined;
  private closed = false;

  private constructor(private readonly config: pg.ClientConfig) {}

  static async open(pool: pg.Pool): Promise<WorkerLiveness> {
    const liveness = new WorkerLiveness({ ...pool.options, application_name: 'pgferry worker' });
    liveness.watch(await liveness.connect());
    return liveness;
  }

  /** Marks a worker (pool) id as alive for as long as this process lives. */
  async hold(workerId: string): Promise<void> {
    this.held.add(workerId);
    await this.client?.query('select pg_advisory_lock(ferry.worker_lock_class(), hashtext($1))', [workerId]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => {});
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(this.config);
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  /**
   * A lost connection (the server restarted, a network blip, a session timeout) loses the
   * locks with it, and the other workers would take this live worker for dead and hand its
   * running jobs to another: connect again and take them again, until this process closes.
   */
  private watch(client: pg.Client): void {
    this.client = client;
    client.once('end', () => {
      if (this.client === client) this.client = undefined;
      if (!this.closed) setTimeout(() => void this.reconnect(), RECONNECT_MS).unref();
    });
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    let client: pg.Client | undefined;
    try {
      client = await this.connect();
      for (const id of this.held) {
        await client.query('select pg_advisory_lock(ferry.worker_lock_class(), hashtext($1))', [id]);
      }
    } catch {
      await client?.end().catch(() => {});
      if (!this.closed) setTimeout(() => void this.reconnect(), RECONNECT_MS).unref();
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.watch(client);
  }
}

/**
 * Unlocks the pgferry jobs of workers that are gone, look after look (one sweep of the
 * worker's): a worker is gone once it has been seen without its advisory lock, while holding
 * jobs locked for longer than `graceMs` (a live worker takes its lock as it starts), in looks
 * at least `graceMs` apart. One look is not enough: a live worker whose connection was lost
 * takes its lock again within moments, and must not lose its running jobs meanwhile.
 */
export class DeadWorkerSweep {
  /** Worker ids seen without their lock, and since when. */
  private readonly locklessSince = new Map<string, number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly graceMs: number,
  ) {}

  /** One look; returns the ids of the workers found gone, whose jobs it unlocked. */
  async sweep(): Promise<string[]> {
    const now = Date.now();
    const lockless = await locklessWorkers(this.pool, this.graceMs);
    for (const id of [...this.locklessSince.keys()]) if (!lockless.includes(id)) this.locklessSince.delete(id);
    const dead = lockless.filter((id) => {
      if (!this.locklessSince.has(id)) this.locklessSince.set(id, now);
      return now - this.locklessSince.get(id)! >= this.graceMs;
    });
    if (dead.length === 0) return [];
    await this.pool.query('select graphile_worker.force_unlock_workers($1)', [dead]);
    for (const id of dead) this.locklessSince.delete(id);
    return dead;
  }
}

/** Worker ids holding pgferry jobs locked for longer than `graceMs` whose advisory lock nobody holds. */
async function locklessWorkers(pool: pg.Pool, graceMs: number): Promise<string[]> {
  const { rows } = await pool.query<{ dead: string[] }>(
    `select coalesce(array_agg(distinct j.locked_by), '{}') as dead
     from graphile_worker._private_jobs j
     join graphile_worker._private_tasks t on t.id = j.task_id
     where j.locked_by is not null
       and j.locked_at < now() - make_interval(secs => $1::double precision / 1000)
       and t.identifier like 'pgferry\\_%'
       and not exists (
         select from pg_locks l
         where l.locktype = 'advisory' and l.granted and l.objsubid = 2
           and l.database = (select oid from pg_database where datname = current_database())
           and l.classid = ferry.worker_lock_class()::oid
           and l.objid = hashtext(j.locked_by)::oid
       )`,
    [graceMs],
  );
  return rows[0].dead;
}
