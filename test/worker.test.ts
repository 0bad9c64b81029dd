// The worker (graphile-worker): queued loads, queue serialisation, cancel, SIGTERM, a killed
// worker's load finished by another, and cron firing a sync — on the real test server.
import type { ChildProcess } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningWorker, startWorker } from '../src/jobs/worker.js';
import { load } from '../src/load/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { startWorkerChild } from './helpers/worker-child.js';

const db: TestDatabase = await createTestDatabase();
let dir: string;
let small: string;
let big: string;
const BIG_ROWS = 150_000;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex', 'cancel_me', 'queued_x', 'killed', 'termed', 'cron']);
  productsMapping(dir);
  small = writeFile(dir, 'small.csv', 'sku,name,price\nA,Apple,1\nB,Banana,2\n');
  const lines = ['sku,name,price'];
  for (let i = 0; i < BIG_ROWS; i++) lines.push(`S${i},Item ${i},${i % 100}`);
  big = writeFile(dir, 'big.csv', `${lines.join('\n')}\n`);
});

const workers: RunningWorker[] = [];
afterAll(async () => {
  for (const w of workers) await w.stop();
});

/** A worker in this process, logging into `lines`. */
async function worker(
  lines: string[],
  options: { concurrency?: number; projectFile?: string; cronBackfillMs?: number } = {},
) {
  const w = await startWorker(db.pool, {
    pollInterval: 200,
    sweepIntervalMs: 300,
    deadAfterMs: 500,
    log: (line) => lines.push(`${Date.now()} ${line}`),
    ...options,
  });
  workers.push(w);
  return w;
}

const queue = (file: string, tenant: string, extra: object = {}) =>
  load(db.pool, { file, tenant, mapping: 'products', mappingsDir: dir, queue: true, force: true, ...extra });

/** Its status commits with its transaction; its progress is written on the side, at once. */
async function stepOf(loadId: number): Promise<string | undefined> {
  const { rows } = await db.pool.query('select step from ferry.load_progress where load_id = $1', [loadId]);
  return rows[0]?.step;
}

async function statusOf(loadId: number): Promise<string> {
  const { rows } = await db.pool.query('select ferry.load_status(l) as s from ferry.loads l where id = $1', [loadId]);
  return rows[0].s;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ended = (loadId: number) =>
  until(`load ${loadId} to end`, async () => {
    const s = await statusOf(loadId);
    return ['succeeded', 'failed', 'cancelled'].includes(s) && s;
  });

const countOf = async (tenant: string) =>
  Number((await db.pool.query('select count(*) from app.products where tenant_id = $1', [tenant])).rows[0].count);

/** A worker in a child process, resolved once it is ready. */
const workerProcess = () => startWorkerChild({ url: db.url });

const exited = (child: ChildProcess) => new Promise((resolve) => child.on('close', resolve));

describe('load --queue and the worker', () => {
  it('runs queued loads; one tenant and table at a time, others side by side', async () => {
    const first = await queue(small, 'acme');
    const second = await queue(big, 'acme');
    const other = await queue(small, 'globex');
    for (const q of [first, second, other]) expect(q.status).toBe('queued');
    expect(await statusOf(first.loadId!)).toBe('queued');

    const lines: string[] = [];
    await worker(lines, { concurrency: 3 });
    expect(await ended(second.loadId!)).toBe('succeeded');
    expect(await ended(first.loadId!)).toBe('succeeded');
    expect(await ended(other.loadId!)).toBe('succeeded');
    expect(await countOf('acme')).toBe(BIG_ROWS + 2);

    // Same queue: the second load started only after the first had ended.
    const at = (text: string) => Number(lines.find((l) => l.includes(text))!.split(' ')[0]);
    const [a, b] = [first.loadId!, second.loadId!].sort((x, y) => at(`load ${x}: started`) - at(`load ${y}: started`));
    expect(at(`load ${b}: started`)).toBeGreaterThanOrEqual(at(`load ${a} succeeded`));
    const { rows } = await db.pool.query('select count(*)::int as n from ferry.load_progress where load_id = $1', [
      second.loadId,
    ]);
    expect(rows[0].n).toBe(1);
  });

  it('cancel: a queued load at once; a running one at its next batch, rolled back', async () => {
    // No worker running: nobody takes the queued load before it is cancelled.
    for (const w of workers.splice(0)) await w.stop();
    const queued = await queue(small, 'queued_x');
    const { rows } = await db.pool.query('select ferry.request_cancel($1, $2) as done', [queued.loadId, 'test']);
    expect(rows[0].done).toBe('cancelled');

    await worker([]);
    // Another promotion of the same tenant and table holds the load at its first batch.
    const holder = await db.pool.connect();
    // The lock's row made (committed) first, so that the load's compile, which makes it too,
    // does not wait for this transaction.
    await holder.query(`select ferry.make_lock_row('target', 'cancel_me:app.products')`);
    await holder.query('begin');
    await holder.query(`select ferry.lock_row('target', 'cancel_me:app.products')`);
    const running = await queue(big, 'cancel_me', { batchSize: 500 });
    await until('the load to wait for the promotion lock', async () => (await stepOf(running.loadId!)) === 'promote');
    const asked = await db.pool.query('select ferry.request_cancel($1, $2) as done', [running.loadId, 'test']);
    expect(asked.rows[0].done).toBe('requested');
    await holder.query('commit');
    holder.release();
    expect(await ended(running.loadId!)).toBe('cancelled');
    expect(await statusOf(queued.loadId!)).toBe('cancelled');
    expect(await countOf('cancel_me')).toBe(0);
    expect(await countOf('queued_x')).toBe(0);
    // The status is recorded first, then the load's tables are dropped: wait for the cleanup.
    const leftTables = async () =>
      (
        await db.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_tables where tablename like '%\\_' || $1::text`,
          [running.loadId],
        )
      ).rows[0].n;
    await until(
      "the cancelled load's tables to be dropped",
      async () => (await leftTables()) === 0 || undefined,
      10_000,
    );
    expect(await leftTables()).toBe(0);
  });
});

describe('a worker that dies or is stopped', () => {
  it('SIGKILL: another worker notices within seconds and finishes its load', async () => {
    for (const w of workers.splice(0)) await w.stop();
    const { child } = await workerProcess();
    const queued = await queue(big, 'killed', { batchSize: 1000 });
    await until('the load to start', async () =>
      ['staging', 'transforming', 'promoting'].includes(await statusOf(queued.loadId!)),
    );
    child.kill('SIGKILL');
    await exited(child);
    await until('the load to show interrupted', async () => (await statusOf(queued.loadId!)) === 'interrupted');

    const lines: string[] = [];
    const started = Date.now();
    await worker(lines);
    expect(await ended(queued.loadId!)).toBe('succeeded');
    // Not graphile-worker's 4-hour lock timeout.
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(lines.join('\n')).toMatch(/is gone: its jobs are unlocked/);
    expect(await countOf('killed')).toBe(BIG_ROWS);
  });

  it('SIGTERM: the running load stops at a batch boundary, resumable, and is finished later', async () => {
    for (const w of workers.splice(0)) await w.stop();
    const { child, output } = await workerProcess();
    const queued = await queue(big, 'termed', { batchSize: 500 });
    await until('the load to promote', async () => (await stepOf(queued.loadId!)) === 'promote');
    child.kill('SIGTERM');
    await exited(child);
    expect(output()).toMatch(/stopped/);
    expect(await statusOf(queued.loadId!)).toBe('interrupted');
    expect(await countOf('termed')).toBe(0);

    await worker([]);
    expect(await ended(queued.loadId!)).toBe('succeeded');
    expect(await countOf('termed')).toBe(BIG_ROWS);
  });
});

describe('cron', () => {
  it('fires a sync on its schedule (a missed minute caught up at start); skips a paused one', async () => {
    for (const w of workers.splice(0)) await w.stop();
    const source = await createTestDatabase();
    await source.pool.query(`create table items (sku text primary key, name text, price numeric);
      insert into items values ('C1', 'Cron', 1)`);
    process.env.PGFERRY_TEST_CRON_SOURCE = source.url;
    const projectFile = writeFile(
      dir,
      'pgferry.yaml',
      `mappings: .
syncs:
  every_minute:
    from: env:PGFERRY_TEST_CRON_SOURCE
    table: items
    tenant: cron
    mapping: products
    schedule: "* * * * *"
  paused_one:
    from: env:PGFERRY_TEST_CRON_SOURCE
    table: items
    tenant: cron
    mapping: products
    schedule: "* * * * *"
`,
    );
    const { ensureQueueSchema } = await import('../src/jobs/queue.js');
    await ensureQueueSchema(db.pool);
    // As if a worker had run these schedules until two minutes ago.
    await db.pool.query(
      `insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution)
       select id, now() - interval '1 hour', now() - interval '2 minutes'
       from unnest(array['pgferry_sync:every_minute', 'pgferry_sync:paused_one']) as id`,
    );
    await db.pool.query(`insert into ferry.syncs (name, tenant_id, mapping, mode, config, paused_at)
      select 'paused_one', id, 'products', 'upsert', '{}', now() from ferry.tenants where slug = 'cron'`);

    const lines: string[] = [];
    await worker(lines, { projectFile, cronBackfillMs: 10 * 60_000 });
    await until('the sync to run', async () => {
      const { rows } = await db.pool.query(
        `select last_outcome from ferry.sync_state where sync_name = 'every_minute'`,
      );
      return rows[0]?.last_outcome === 'succeeded';
    });
    await until('the paused sync to be skipped', async () => lines.some((l) => l.includes('paused_one: paused')));
    expect(await countOf('cron')).toBe(1);
    const { rows } = await db.pool.query(`select last_outcome from ferry.sync_state where sync_name = 'paused_one'`);
    expect(rows[0]?.last_outcome ?? null).toBeNull();
  });
});
