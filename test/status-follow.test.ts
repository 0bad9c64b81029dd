// `pgferry status LOAD --follow`: a load is watched through the notifications its status
// changes and progress writes send on `pgferry_load` (with polling for what notifies nothing),
// until it ends or is interrupted.
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { load } from '../src/load/load.js';
import { followLoad, type LoadSnapshot } from '../src/report/follow-load.js';
import { productsMapping, productsTable, registerLoadLike, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

let db: TestDatabase;
let finished: number;
/** Sessions that claim a load, as a running load's process does: closed after each test. */
const claims: pg.Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = tempDir();
  await productsTable(db.pool, ['acme']);
  const mapping = productsMapping(dir);
  const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\nB,b,2\nC,c,oops\n');
  const result = await load(db.pool, { file, tenant: 'acme', mapping });
  expect(result.status).toBe('succeeded');
  finished = result.loadId!;
});

afterEach(async () => {
  for (const claim of claims.splice(0)) await claim.end().catch(() => {});
});

const registerLoad = () => registerLoadLike(db.pool, finished);

/** Claims a load in a session of its own, so that it counts as running (not interrupted). */
async function claimLoad(loadId: number): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => {});
  await client.connect();
  claims.push(client);
  const { rows } = await client.query('select ferry.claim_load($1) as claimed', [loadId]);
  expect(rows[0].claimed).toBe(true);
  return client;
}

const sql = (text: string, values: unknown[]) => db.pool.query(text, values);

/** Whether this session (the pool's next idle client: the one released last) still listens. */
async function pooledClientListens(): Promise<boolean> {
  const { rows } = await db.pool.query('select count(*)::int as n from pg_listening_channels()');
  return rows[0].n > 0;
}

describe('followLoad', () => {
  it('sees the progress and the status changes another session makes, until the load ends', async () => {
    const loadId = await registerLoad();
    await claimLoad(loadId);
    const seen: LoadSnapshot[] = [];
    // No polling to speak of: what it sees, it learns from the notifications.
    const following = followLoad(db.pool, loadId, { onChange: (s) => seen.push(s), pollMs: 60_000 });
    await until(() => seen.length > 0);
    expect(seen[0]).toMatchObject({ loadId, status: 'registered', progress: null });

    await sql(`select ferry.set_status($1, 'staging')`, [loadId]);
    await sql(`select ferry.report_progress($1, 'stage', 500, 2000, 40, 'worker-1')`, [loadId]);
    await until(() => seen.at(-1)?.progress?.done === 500);
    expect(seen.at(-1)).toMatchObject({
      status: 'staging',
      progress: { step: 'stage', done: 500, total: 2000, rows: 40, worker: 'worker-1' },
    });

    await sql(`select ferry.set_status($1, 'promoting')`, [loadId]);
    await sql(`select ferry.report_progress($1, 'promote', 30, 80, 30)`, [loadId]);
    await until(() => seen.at(-1)?.progress?.step === 'promote');
    expect(seen.at(-1)).toMatchObject({
      status: 'promoting',
      progress: { step: 'promote', done: 30, total: 80, rows: 30, worker: 'worker-1' },
    });

    await sql(`update ferry.loads set rows_read = 80, rows_staged = 80, inserted = 80 where id = $1`, [loadId]);
    await sql(`select ferry.set_status($1, 'succeeded')`, [loadId]);
    const final = await following;
    expect(final).toMatchObject({ loadId, status: 'succeeded', interrupted: false });
    expect(final.counts).toMatchObject({ read: 80, staged: 80, inserted: 80 });
    expect(seen.at(-1)).toMatchObject({ status: 'succeeded' });
    const statuses = seen.map((s) => s.status).filter((s, i, all) => s !== all[i - 1]);
    expect(statuses).toEqual(['registered', 'staging', 'promoting', 'succeeded']);
    // Its connection went back to the pool, no longer listening.
    expect(await pooledClientListens()).toBe(false);
    expect(db.pool.totalCount - db.pool.idleCount).toBe(0);
  });

  it('returns at once for a load that has ended', async () => {
    const seen: LoadSnapshot[] = [];
    const started = Date.now();
    const final = await followLoad(db.pool, finished, { onChange: (s) => seen.push(s), pollMs: 60_000 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(final).toMatchObject({ loadId: finished, status: 'succeeded', interrupted: false });
    expect(final.counts).toMatchObject({ read: 3, staged: 3, rejected: 1, inserted: 2 });
    expect(seen).toHaveLength(1);
    expect(await pooledClientListens()).toBe(false);
  });

  it('ends with a cancelled load', async () => {
    const loadId = await registerLoad();
    await claimLoad(loadId);
    const seen: LoadSnapshot[] = [];
    const following = followLoad(db.pool, loadId, { onChange: (s) => seen.push(s), pollMs: 60_000 });
    await until(() => seen.length > 0);
    await sql(`select ferry.set_status($1, 'cancelled', 'cancelled by test')`, [loadId]);
    expect(await following).toMatchObject({ status: 'cancelled', error: 'cancelled by test', interrupted: false });
  });

  it('an unknown load is an error, and the connection is given back', async () => {
    const following = followLoad(db.pool, 987654, { onChange: () => {} });
    await expect(following).rejects.toThrow(PgferryError);
    await expect(following).rejects.toThrow('no load 987654');
    expect(db.pool.totalCount - db.pool.idleCount).toBe(0);
    expect(await pooledClientListens()).toBe(false);
  });

  it('a load whose process goes away (which notifies nothing) ends as interrupted, seen by polling', async () => {
    const loadId = await registerLoad();
    const claim = await claimLoad(loadId);
    await sql(`select ferry.set_status($1, 'staging')`, [loadId]);
    const seen: LoadSnapshot[] = [];
    const following = followLoad(db.pool, loadId, { onChange: (s) => seen.push(s), pollMs: 100 });
    await until(() => seen.length > 0);
    expect(seen[0].status).toBe('staging');
    await claim.end();
    const final = await following;
    expect(final).toMatchObject({ loadId, status: 'interrupted', interrupted: true });
    expect(seen.map((s) => s.status)).toEqual(['staging', 'interrupted']);
  });

  it('an unclaimed load is interrupted at once', async () => {
    const loadId = await registerLoad();
    const final = await followLoad(db.pool, loadId, { onChange: () => {} });
    expect(final).toMatchObject({ status: 'interrupted', interrupted: true });
  });

  it('stops when its signal is aborted', async () => {
    const loadId = await registerLoad();
    await claimLoad(loadId);
    const controller = new AbortController();
    const seen: LoadSnapshot[] = [];
    const following = followLoad(db.pool, loadId, {
      onChange: (s) => seen.push(s),
      signal: controller.signal,
      pollMs: 60_000,
    });
    await until(() => seen.length > 0);
    controller.abort(new Error('enough'));
    await expect(following).rejects.toThrow('enough');
    expect(db.pool.totalCount - db.pool.idleCount).toBe(0);
    expect(await pooledClientListens()).toBe(false);
  });
});

describe('pgferry status --follow', () => {
  const env = () => ({ DATABASE_URL: db.url });

  it('waits for a running load, prints each change of status, then the status; exit 0', async () => {
    const loadId = await registerLoad();
    await claimLoad(loadId);
    const run = runCli(['status', String(loadId), '--follow'], { env: env() });
    // Once it has read the load (after its LISTEN), what happens next is notified to it.
    await until(async () => {
      const { rows } = await sql(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and query like 'select ferry.load_status(l) as status, l.error%'`,
        [],
      );
      return rows[0].n > 0;
    });
    await sql(`select ferry.set_status($1, 'staging')`, [loadId]);
    await sql(`select ferry.report_progress($1, 'stage', 10, 20, 2)`, [loadId]);
    await sql(`select ferry.set_status($1, 'succeeded')`, [loadId]);
    const { code, stdout, stderr } = await run;
    expect(code).toBe(0);
    expect(stderr).toMatch(new RegExp(`^load ${loadId}: registered$`, 'm'));
    expect(stderr).toMatch(new RegExp(`^load ${loadId}: succeeded$`, 'm'));
    expect(stderr).not.toContain('\x1b['); // no progress bar when piped
    expect(stdout).toMatch(new RegExp(`^load ${loadId}: succeeded\\n  tenant    acme`));
  });

  it('a load that failed: the status and exit 1; --json prints only the JSON', async () => {
    const loadId = await registerLoad();
    await claimLoad(loadId);
    await sql(`select ferry.set_status($1, 'failed', 'too many rejects')`, [loadId]);

    const text = await runCli(['status', String(loadId), '--follow'], { env: env() });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^load ${loadId}: failed`));
    expect(text.stdout).toMatch(/error {5}too many rejects/);
    expect(text.stderr).toBe(`load ${loadId}: failed\n`);

    const json = await runCli(['status', String(loadId), '--follow', '--json'], { env: env() });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: loadId, status: 'failed', error: 'too many rejects' });
    expect(json.stderr).toBe('');
  });

  it('a finished load: exit 0 at once; an unknown one: exit 2', async () => {
    const done = await runCli(['status', String(finished), '-f'], { env: env() });
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/staged 3 = promoted 2 \+ duplicates 0 \+ rejected 1/);

    const unknown = await runCli(['status', '987654', '--follow'], { env: env() });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no load 987654/);
  });

  it('an interrupted load: says so, exit 1', async () => {
    const loadId = await registerLoad();
    const run = await runCli(['status', String(loadId), '--follow'], { env: env() });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`^load ${loadId}: interrupted`));
    expect(run.stderr).toMatch(new RegExp(`load ${loadId} was interrupted: .*pgferry resume ${loadId}`));
  });
});
