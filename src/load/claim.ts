import pg from 'pg';

/**
 * A load claimed by this process: a session advisory lock (ferry.claim_load) held on a
 * connection of its own for as long as the process lives, or on one the caller lends (a
 * sync's, which holds the sync's lock for longer). A load in progress that nobody claims was
 * interrupted, and `pgferry loads` says so. The connection is outside the pool, which a
 * caller may have sized to one connection. It also listens for `pgferry cancel`.
 */
export class LoadClaim {
  private lost = false;
  /** `pgferry cancel` asked this load to stop: it stops at its next batch. */
  cancelRequested = false;

  private readonly onLost = () => (this.lost = true);
  /**
   * A notification is only a hint: any role may pg_notify('pgferry_cancel', …), a tenant's
   * mapping too. The load stops only if the catalog has the request, which only
   * ferry.request_cancel writes (tenant roles cannot touch ferry.cancel_requests).
   */
  private readonly onNotification = (message: pg.Notification) => {
    if (message.channel === 'pgferry_cancel' && message.payload === String(this.loadId)) this.checkCancelRequest();
  };

  private constructor(
    private readonly pool: pg.Pool,
    readonly loadId: number,
    private client: pg.Client,
    /** The caller's connection: released by unlocking, not by closing it. */
    private lent: boolean,
  ) {
    this.watch();
  }

  /**
   * Claims the load; undefined when another process holds it. On `session`, a connection the
   * caller keeps open until after release(), rather than on a new one (one connection fewer).
   */
  static async take(pool: pg.Pool, loadId: number, session?: pg.Client): Promise<LoadClaim | undefined> {
    if (session)
      return (await LoadClaim.claim(session, loadId)) ? new LoadClaim(pool, loadId, session, true) : undefined;
    const client = await LoadClaim.connect(pool, loadId);
    return client && new LoadClaim(pool, loadId, client, false);
  }

  /**
   * After a lost connection (a server restart), claims the load again, so that it does not
   * show as interrupted while this process retries it.
   */
  async ensure(): Promise<void> {
    if (!this.lost) return;
    const client = await LoadClaim.connect(this.pool, this.loadId);
    if (!client) throw new Error(`load ${this.loadId} was claimed by another process meanwhile`);
    this.unwatch();
    this.client = client;
    this.lent = false;
    this.lost = false;
    this.watch();
  }

  /**
   * Runs a statement on the claim's connection, which is otherwise idle: the load's progress
   * is written there, so that writing it never waits for, or opens, a connection of the pool.
   */
  async query(text: string, values: unknown[]): Promise<void> {
    await this.client.query(text, values);
  }

  /** Closing the session releases the lock; a lent one is unlocked (what claim_load took). */
  async release(): Promise<void> {
    this.unwatch();
    if (!this.lent) {
      await this.client.end().catch(() => {});
      return;
    }
    await this.client.query('unlisten pgferry_cancel').catch(() => {});
    await this.client
      .query('select pg_advisory_unlock(ferry.load_lock_class(), $1::integer)', [this.loadId])
      .catch(() => {});
  }

  private static async connect(pool: pg.Pool, loadId: number): Promise<pg.Client | undefined> {
    const client = new pg.Client(pool.options);
    client.on('error', () => {});
    await client.connect();
    if (await LoadClaim.claim(client, loadId)) return client;
    await client.end();
    return undefined;
  }

  private static async claim(client: pg.Client, loadId: number): Promise<boolean> {
    const { rows } = await client.query<{ claimed: boolean }>('select ferry.claim_load($1) as claimed', [loadId]);
    if (rows[0].claimed) await client.query('listen pgferry_cancel');
    return rows[0].claimed;
  }

  private watch(): void {
    // A lost connection only loses the claim; the load's own connections report the failure.
    this.client.on('error', this.onLost);
    this.client.on('end', this.onLost);
    this.client.on('notification', this.onNotification);
    // Asked before this process listened (while queued, or while its connection was lost).
    this.checkCancelRequest();
  }

  /** Sets cancelRequested when ferry.cancel_requests has a request for this load. */
  private checkCancelRequest(): void {
    this.client
      .query<{ asked: boolean }>('select exists (select from ferry.cancel_requests where load_id = $1) as asked', [
        this.loadId,
      ])
      .then(({ rows }) => {
        if (rows[0]?.asked) this.cancelRequested = true;
      })
      .catch(() => {});
  }

  private unwatch(): void {
    this.client.off('error', this.onLost);
    this.client.off('end', this.onLost);
    this.client.off('notification', this.onNotification);
  }
}
