// `pgferry load` of a load that `pgferry cancel` stops exits 1, as `status --follow` on it does.
import { beforeAll, describe, expect, it } from 'vitest';

import { cancelLoad } from '../src/load/cancel-load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a cancelled load', () => {
  it('exits 1 and says it was cancelled', async () => {
    const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\nB,b,2\n');
    // The target table locked: the load waits on it, running, until the lock goes.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table app.products in access exclusive mode');
      const running = runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir], {
        env: { DATABASE_URL: db.url },
      });
      const loadId = await until(async () => {
        const { rows } = await db.pool.query<{ id: string }>(
          `select l.id from ferry.loads l
            where exists (select from pg_locks k where not k.granted and k.relation = 'app.products'::regclass)
            order by l.id desc limit 1`,
        );
        return rows[0] ? Number(rows[0].id) : undefined;
      }, 'the load to wait on the table');
      expect(await cancelLoad(db.pool, loadId, { wait: false })).toEqual({ loadId, outcome: 'requested' });
      await blocker.query('commit');
      const run = await running;
      expect(run.stdout).toMatch(/load \d+ CANCELLED: nothing was promoted/);
      expect(run.code).toBe(1);
      const { rows } = await db.pool.query('select status from ferry.loads where id = $1', [loadId]);
      expect(rows[0].status).toBe('cancelled');
    } finally {
      await blocker.query('rollback').catch(() => {});
      blocker.release();
    }
  });
});
