import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { catalogDb } from './catalog-db.js';
import { answerApi } from './dashboard-api.js';
import { hasToken, sameSecret, TOKEN_COOKIE } from './dashboard-token.js';
import { LoadEvents } from './load-events.js';
import { hostOfHeader, isLoopback } from './loopback.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { isPage, readAsset } from './static-assets.js';

export interface DashboardOptions {
  /** (Default: 5710; 0 takes a free port) */
  port?: number;
  /** The address to listen on. (Default: 127.0.0.1) Anything but loopback needs `token`. */
  host?: string;
  /** The secret every request must carry (Bearer, or the cookie `?token=` sets); PGFERRY_DASHBOARD_TOKEN in the CLI. */
  token?: string;
  /** Limit every page and answer to this tenant (to show a supplier their own rejects). */
  tenant?: string;
  /** Allow actions (cancel a load); read-only without. (Default: false) */
  allowActions?: boolean;
  /** Called with each request's failure that is not the client's (the CLI logs it). */
  onError?: (error: Error) => void;
}

export interface RunningDashboard {
  /** Where it listens: `http://127.0.0.1:5710/`. */
  url: string;
  close: () => Promise<void>;
}

/**
 * `pgferry dashboard`: serves the loads and a load's page, and the JSON API under /api/, over
 * the catalog of `pool`. Refuses to listen on anything but loopback without a token, and to
 * start for a tenant that does not exist.
 *
 * @example
 *   const dashboard = await startDashboard(pool, { port: 0, tenant: 'acme' });
 *   console.log(dashboard.url);
 */
export async function startDashboard(pool: pg.Pool, options: DashboardOptions = {}): Promise<RunningDashboard> {
  const host = options.host ?? '127.0.0.1';
  const token = options.token || undefined;
  if (!isLoopback(host) && !token) {
    throw new PgferryError(`the dashboard listens on ${host}, beyond this machine, only with a token`, {
      hint: 'set PGFERRY_DASHBOARD_TOKEN to a long random secret, or leave --host at 127.0.0.1',
    });
  }
  if (options.tenant !== undefined) {
    const found = await catalogDb(pool)
      .selectFrom('ferry.tenants')
      .select('id')
      .where('slug', '=', options.tenant)
      .executeTakeFirst();
    if (!found) throw new PgferryError(`no tenant ${options.tenant}`, { hint: 'pgferry tenant list shows them' });
  }
  const scope = { tenant: options.tenant, allowActions: Boolean(options.allowActions) };
  const events = new LoadEvents(pool, options.tenant, (error) => options.onError?.(error));

  const server = http.createServer((req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    handle(req, res).catch((error: Error) => {
      options.onError?.(error);
      if (!res.headersSent) send(res, 500, { error: 'the dashboard failed to answer; its log says why' });
      else res.destroy();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    // Without a token, only a page this machine asked for by a loopback name is answered: a
    // web page elsewhere cannot reach it by pointing a DNS name at 127.0.0.1 (DNS rebinding).
    if (!token && !isLoopback(hostOfHeader(req.headers.host ?? ''))) {
      return send(res, 421, { error: 'open the dashboard by a loopback address, such as http://127.0.0.1' });
    }
    if (token) {
      const given = url.searchParams.get('token');
      if (given !== null && method === 'GET' && sameSecret(given, token)) {
        // The token leaves the address (and the history) at once; the cookie carries it on.
        url.searchParams.delete('token');
        res.setHeader('Set-Cookie', `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
        res.writeHead(303, { Location: url.pathname + url.search });
        res.end();
        return;
      }
      if (!hasToken(req, token)) return send(res, 401, { error: 'this dashboard needs its token' });
    }
    if (method === 'POST') {
      if (!sameOrigin(req)) return send(res, 403, { error: 'a cross-site request is refused' });
      if (!url.pathname.startsWith('/api/')) return send(res, 404, { error: 'no such action' });
    } else if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, POST');
      return send(res, 405, { error: `${method} is not allowed` });
    }

    if (url.pathname === '/api/events' && method === 'GET') return events.watch(res);
    if (url.pathname.startsWith('/api/')) {
      const answer = await answerApi(pool, scope, method, url, res);
      if (!('streamed' in answer)) send(res, answer.status, answer.json);
      return;
    }
    if (url.pathname === '/favicon.ico') {
      // Browsers ask for one on every page; there is none, and no error to log for it.
      res.writeHead(204);
      res.end();
      return;
    }
    const asset = isPage(url.pathname)
      ? await readAsset('dashboard.html')
      : url.pathname.startsWith('/assets/')
        ? await readAsset(url.pathname.slice('/assets/'.length))
        : null;
    if (!asset) return send(res, 404, { error: `no such page: ${url.pathname}` });
    res.writeHead(200, { 'Content-Type': asset.type, 'Content-Length': asset.body.length });
    res.end(method === 'HEAD' ? undefined : asset.body);
  }

  server.listen(options.port ?? 5710, host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([error]) => {
      throw new PgferryError(`the dashboard cannot listen on ${host}:${options.port ?? 5710}: ${error.message}`, {
        cause: error,
      });
    }),
  ]);
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}/`,
    close: async () => {
      await events.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An action comes from the dashboard's own page or a script, never from another site: it
 * carries the header `X-Pgferry-Action: 1` (which a browser sends cross-site only after a
 * preflight this server never grants), and a browser's Origin names the host it was sent to.
 */
function sameOrigin(req: http.IncomingMessage): boolean {
  if (req.headers['x-pgferry-action'] !== '1') return false;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function send(res: http.ServerResponse, status: number, json: unknown): void {
  const body = JSON.stringify(json);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(body);
}
