import os from 'node:os';

import pg from 'pg';

/** The longest pause between two keepalive queries on the claim's connection. */
const KEEPALIVE_MAX_MS = 5000;
/** The shortest: a server whose idle_session_timeout is tiny still gets a query every so often. */
const KEEPALIVE_MIN_MS = 200;

/**
 * A load claimed by this process: a session advisory lock (ferry.claim_load, on a key tenant
 * code cannot compute) held on a connection of its own for as long as the process lives, or
 * on one the caller lends (a sync's, which holds the sync's lock for longer), and the load's
 * claim epoch it got when taking it (ferry.take_load_claim). Every step that writes checks
 * that epoch in its own transaction (ferry.check_claim): a process that lost its claim
 * unawares cannot commit after another process took the load over.
 *
 * The connection is outside the pool, which a caller may have sized to one connection. It
 * listens for `pgferry cancel`, is kept busy by a cheap query every few seconds (below the
 * server's idle_session_timeout: no idle cut-off drops it), and, lost, is opened again and
 * the lock taken again with the same epoch, unless another process took the load meanwhile:
 * `takenOver` then says so, and the load stops at its next batch.
 */
export class LoadClaim {
  private lost = false;
  private released = false;
  private reclaiming: Promise<void> | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  /** `pgferry cancel` asked this load to stop: it stops at its next batch. */
  cancelRequested = false;
  /** Another process took the load over (why, in a sentence): this one must stop without writing. */
  takenOver: string | undefined;

  private readonly onLost = () => {
    if (this.released || this.lost) return;
    this.lost = true;
    void this.reclaim();
  };
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
    /** The load's claim epoch this process got: its token for ferry.check_claim. */
    readonly epoch: number,
    private client: pg.Client,
    /** The caller's connection: released by unlocking, not by closing it. */
    private lent: boolean,
    keepaliveMs: number,
  ) {
    this.watch();
    this.keepalive = setInterval(() => void this.tick(), keepaliveMs);
    // A claim never keeps the process alive by itself.
    this.keepalive.unref();
  }

  /**
   * Claims the load (raising its claim epoch); undefined when another process holds it. On
   * `session`, a connection the caller keeps open until after release(), rather than on a new
   * one (one connection fewer). `runner` (a worker's id) is recorded as the claim's owner.
   */
  static async take(
    pool: pg.Pool,
    loadId: number,
    session?: pg.Client,
    runner?: string,
  ): Promise<LoadClaim | undefined> {
    const client = session ?? (await LoadClaim.connect(pool));
    try {
      const { rows } = await client.query<{ epoch: string | null; idle_ms: string }>(
        `select ferry.take_load_claim($1, $2) as epoch,
                (select setting from pg_settings where name = 'idle_session_timeout') as idle_ms`,
        [loadId, ownerOf(runner)],
      );
      if (rows[0].epoch === null) {
        if (!session) await client.end().catch(() => {});
        return undefined;
      }
      await client.query('listen pgferry_cancel');
      return new LoadClaim(pool, loadId, Number(rows[0].epoch), client, !!session, keepaliveMsFor(rows[0].idle_ms));
    } catch (error) {
      if (!session) await client.end().catch(() => {});
      throw error;
    }
  }

  /**
   * After a lost connection (a server restart), claims the load again, so that it does not
   * show as interrupted while this process retries it. Throws when another process took it.
   */
  async ensure(): Promise<void> {
    if (this.lost) await this.reclaim();
    if (this.takenOver) throw new Error(this.takenOver);
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
    this.released = true;
    clearInterval(this.keepalive);
    await this.reclaiming;
    this.unwatch();
    if (!this.lent) {
      await this.client.end().catch(() => {});
      return;
    }
    await this.client.query('unlisten pgferry_cancel').catch(() => {});
    await this.client.query('select pg_advisory_unlock(ferry.load_claim_key($1))', [this.loadId]).catch(() => {});
  }

  /** The keepalive: a cheap query that also finds out whether another process took the load. */
  private async tick(): Promise<void> {
    if (this.released || this.takenOver) return;
    if (this.lost) return this.reclaim();
    try {
      const { rows } = await this.client.query<{ epoch: string }>(
        'select claim_epoch as epoch from ferry.loads where id = $1',
        [this.loadId],
      );
      if (rows[0] && Number(rows[0].epoch) !== this.epoch) this.takenOver = takenOverMessage(this.loadId);
    } catch {
      // A lost connection also emits 'error' or 'end': onLost reclaims.
    }
  }

  /** Opens a connection and takes the lock again, keeping the epoch; once at a time. */
  private reclaim(): Promise<void> {
    this.reclaiming ??= (async () => {
      try {
        if (this.released || this.takenOver || !this.lost) return;
        const client = await LoadClaim.connect(this.pool);
        const { rows } = await client
          .query<{ outcome: string }>('select ferry.retake_load_claim($1, $2) as outcome', [this.loadId, this.epoch])
          .catch(async (error) => {
            await client.end().catch(() => {});
            throw error;
          });
        const { outcome } = rows[0];
        if (outcome !== 'retaken' || this.released) {
          await client.end().catch(() => {});
          if (outcome === 'taken over') this.takenOver = takenOverMessage(this.loadId);
          // busy: another session holds the lock for now; the next keepalive tick asks again.
          return;
        }
        this.unwatch();
        if (!this.lent) await this.client.end().catch(() => {});
        this.client = client;
        this.lent = false;
        this.lost = false;
        await client.query('listen pgferry_cancel').catch(() => {});
        this.watch();
      } catch {
        // The server is unreachable: the next keepalive tick tries again.
      } finally {
        this.reclaiming = undefined;
      }
    })();
    return this.reclaiming;
  }

  private static async connect(pool: pg.Pool): Promise<pg.Client> {
    // TCP keepalives: a dead peer (a cut network) is noticed, not waited on for hours.
    const client = new pg.Client({ ...pool.options, keepAlive: true });
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  private watch(): void {
    // A lost connection only loses the claim's lock: it is taken again (reclaim), and the
    // load's own connections report their own failures.
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

/** Who holds a claim, as ferry.loads.claimed_by shows it. */
function ownerOf(runner: string | undefined): string {
  return `${os.hostname()} pid ${process.pid}${runner ? ` (${runner})` : ''}`;
}

/** Half the server's idle_session_timeout (in ms, 0: none), within the bounds above. */
function keepaliveMsFor(idleMs: string): number {
  const idle = Number(idleMs);
  if (!(idle > 0)) return KEEPALIVE_MAX_MS;
  return Math.max(KEEPALIVE_MIN_MS, Math.min(KEEPALIVE_MAX_MS, Math.floor(idle / 2)));
}

function takenOverMessage(loadId: number): string {
  return `load ${loadId} was taken over by another process; this process stops without writing`;
}
