import type { ServerResponse } from 'node:http';

import type pg from 'pg';

import { catalogDb } from './catalog-db.js';
import { NotFound } from './not-found.js';
import { requireLoad } from './require-load.js';

/** Where ferry.set_status and ferry.report_progress say a load changed (payload: its id). */
const CHANNEL = 'pgferry_load';

/** A comment line this often keeps proxies and the browser from taking a quiet stream for dead. */
const HEARTBEAT_MS = 15_000;

/**
 * `GET /api/events`: server-sent events fed by the catalog's LISTEN/NOTIFY — one `load` event,
 * with the load's id, whenever a load's status or progress changes. One connection of the
 * pool listens while anyone watches; with a tenant, only that tenant's loads are told of.
 */
export class LoadEvents {
  private readonly watchers = new Set<ServerResponse>();
  private client: pg.PoolClient | undefined;
  private connecting: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly tenantsLoads = new Map<string, boolean>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly tenant: string | undefined,
    private readonly onError: (error: Error) => void,
  ) {}

  async watch(res: ServerResponse): Promise<void> {
    await this.listen();
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    res.write(': watching loads\n\n');
    this.watchers.add(res);
    res.on('close', () => {
      this.watchers.delete(res);
      if (this.watchers.size === 0) void this.unlisten();
    });
  }

  async close(): Promise<void> {
    for (const res of this.watchers) res.end();
    this.watchers.clear();
    await this.unlisten();
  }

  private listen(): Promise<void> {
    this.connecting ??= (async () => {
      const client = await this.pool.connect();
      client.on('notification', (message) => void this.tell(message.payload));
      await client.query(`listen ${CHANNEL}`);
      this.client = client;
      this.heartbeat = setInterval(() => {
        for (const res of this.watchers) res.write(': still here\n\n');
      }, HEARTBEAT_MS);
      this.heartbeat.unref();
    })().catch((error: Error) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  private async unlisten(): Promise<void> {
    const client = this.client;
    await this.connecting?.catch(() => {});
    this.connecting = undefined;
    this.client = undefined;
    clearInterval(this.heartbeat);
    if (!client) return;
    // A session that listens goes back to the pool as it came: no longer listening.
    await client.query(`unlisten ${CHANNEL}`).then(
      () => client.release(),
      (error: Error) => client.release(error),
    );
  }

  /** Whether a load is the tenant's: asked once per load (a running load notifies often; its tenant stays). */
  private async isTenants(loadId: string): Promise<boolean> {
    const known = this.tenantsLoads.get(loadId);
    if (known !== undefined) return known;
    let mine = true;
    try {
      await requireLoad(catalogDb(this.pool), Number(loadId), this.tenant);
    } catch (error) {
      if (!(error instanceof NotFound)) {
        this.onError(error as Error);
        return false;
      }
      mine = false;
    }
    if (this.tenantsLoads.size >= 10_000) this.tenantsLoads.clear();
    this.tenantsLoads.set(loadId, mine);
    return mine;
  }

  private async tell(payload: string | undefined): Promise<void> {
    if (!payload || !/^\d{1,18}$/.test(payload) || this.watchers.size === 0) return;
    if (this.tenant !== undefined && !(await this.isTenants(payload))) return;
    for (const res of this.watchers) res.write(`event: load\ndata: ${payload}\n\n`);
  }
}
