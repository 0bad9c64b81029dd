// A worker whose liveness connection is lost (the server restarted, a network blip, an
// idle-session timeout) takes its lock again: the other workers must not take it for dead and
// hand the load it is running to another worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningWorker, startWorker } from '../src/jobs/worker.js';
import { load } from '../src/load/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['alive']);
  productsMapping(dir);
  // A promotion that takes a while: the row 'slow' sleeps.
  await db.pool.query(`
    create function app.slow_row() returns trigger language plpgsql as $$
    begin perform pg_sleep(3); return null; end $$;
    create trigger products_slow after insert on app.products
      for each row when (new.sku = 'SLOW') execute function app.slow_row();`);
});

const workers: RunningWorker[] = [];
afterAll(async () => {
  for (const w of workers) await w.stop();
});

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sessions holding some worker's liveness lock. */
const livenessLocks = async () =>
  (
    await db.pool.query<{ n: number }>(
      `select count(*)::int as n from pg_locks
       where locktype = 'advisory' and granted and objsubid = 2 and classid = ferry.worker_lock_class()::oid
         and database = (select oid from pg_database where datname = current_database())`,
    )
  ).rows[0].n;

describe('worker liveness', () => {
  it('a lost liveness connection is opened again and the lock taken again; the running load stays its own', async () => {
    const lines: string[] = [];
    workers.push(
      await startWorker(db.pool, {
        pollInterval: 200,
        sweepIntervalMs: 300,
        deadAfterMs: 2000,
        log: (l) => lines.push(l),
      }),
    );
    await until('the worker to hold its lock', async () => (await livenessLocks()) === 1);
    const queued = await load(db.pool, {
      file: writeFile(dir, 'slow.csv', 'sku,name,price\nA,a,1\nSLOW,slow,1\n'),
      tenant: 'alive',
      mapping: 'products',
      mappingsDir: dir,
      queue: true,
    });
    await until('the load to promote', async () => {
      const { rows } = await db.pool.query(
        `select from pg_stat_activity where application_name = $1 and wait_event = 'PgSleep'`,
        [`pgferry load ${queued.loadId}`],
      );
      return rows.length > 0;
    });

    const { rows: killed } = await db.pool.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and application_name = 'pgferry worker'`,
    );
    expect(killed).toHaveLength(1);
    await until('the lock to be held again', async () => (await livenessLocks()) === 1, 10_000);
    await until('the load to end', async () => {
      const { rows } = await db.pool.query('select status from ferry.loads where id = $1', [queued.loadId]);
      return rows[0].status === 'succeeded';
    });
    expect(lines.filter((l) => /is gone/.test(l))).toEqual([]);
    expect(lines.filter((l) => l.startsWith(`load ${queued.loadId}: started`))).toHaveLength(1);
  }, 60_000);
});
