// A tenant's loads into one table promote in the order they were queued, even when the first
// one's job is retried later (its worker stopped with SIGTERM mid-promotion) and another worker
// is free to take the next job of the queue at once.
import type { ChildProcess } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningWorker, startWorker } from '../src/jobs/worker.js';
import { load } from '../src/load/load.js';
import { loadCounts } from '../src/load/load-counts.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { isRunning, startWorkerChild, type WorkerChild } from './helpers/worker-child.js';

const db: TestDatabase = await createTestDatabase();
let dir: string;
const BIG_ROWS = 20_000;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['ordered']);
  productsMapping(dir);
});

const workers: RunningWorker[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const w of workers) await w.stop();
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
});

/** A worker in a child process (concurrency 1), resolved once it is ready. */
async function workerProcess(): Promise<WorkerChild> {
  const worker = await startWorkerChild({ url: db.url });
  children.push(worker.child);
  return worker;
}

async function until(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const statusOf = async (loadId: number) =>
  (await db.pool.query('select status from ferry.loads where id = $1', [loadId])).rows[0].status as string;

describe('the order of a queue', () => {
  it('a load retried after its worker stopped still promotes before the load queued after it', async () => {
    const lines = ['sku,name,price'];
    for (let i = 0; i < BIG_ROWS; i++) lines.push(`S${i},first,1`);
    const big = writeFile(dir, 'first.csv', `${lines.join('\n')}\n`);
    const small = writeFile(dir, 'second.csv', 'sku,name,price\nS1,second,2\nS2,second,2\n');
    const queue = (file: string) =>
      load(db.pool, { file, tenant: 'ordered', mapping: 'products', mappingsDir: dir, queue: true, batchSize: 200 });

    const a = await workerProcess();
    const first = (await queue(big)).loadId!;
    const second = (await queue(small)).loadId!;
    await until(`load ${first} to promote`, async () => {
      const { rows } = await db.pool.query('select step from ferry.load_progress where load_id = $1', [first]);
      return rows[0]?.step === 'promote';
    });
    // A second worker, free to take the queue's next job as soon as the first lets go of it.
    workers.push(await startWorker(db.pool, { pollInterval: 200, log: () => {} }));
    a.child.kill('SIGTERM');
    await a.exited;

    await until(
      'both loads to end',
      async () =>
        ['succeeded', 'failed'].includes(await statusOf(first)) &&
        ['succeeded', 'failed'].includes(await statusOf(second)),
    );
    expect(await statusOf(first)).toBe('succeeded');
    expect(await statusOf(second)).toBe('succeeded');
    // The second load found the first's rows: it updated them, and its values are the last.
    expect(await loadCounts(db.pool, first)).toMatchObject({ inserted: BIG_ROWS, updated: 0 });
    expect(await loadCounts(db.pool, second)).toMatchObject({ inserted: 0, updated: 2 });
    const { rows } = await db.pool.query(
      `select sku, name from app.products where tenant_id = 'ordered' and sku in ('S1', 'S2', 'S3') order by sku`,
    );
    expect(rows).toEqual([
      { sku: 'S1', name: 'second' },
      { sku: 'S2', name: 'second' },
      { sku: 'S3', name: 'first' },
    ]);
  }, 120_000);
});
