// Point 13 of issue 25: `status --follow` on a queued load with no worker running waited
// silently; it warns, as `plan run` does.
import { beforeAll, describe, expect, it } from 'vitest';

import { cancelLoad } from '../src/load/cancel-load.js';
import { load } from '../src/load/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

/** Whether a `status --follow` reads the load (after its LISTEN: what follows is notified to it). */
async function following(): Promise<boolean> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n from pg_stat_activity
     where datname = current_database() and pid <> pg_backend_pid()
       and (query like 'select ferry.load_status(l) as status, l.error%' or query like '%ferry.worker_lock_class()%')`,
  );
  return rows[0].n > 0;
}

describe('pgferry status --follow of a queued load', () => {
  it('warns when no worker runs on the database, once, and keeps following', async () => {
    const file = writeFile(dir, 'queued.csv', 'sku,name,price\nQ,q,1\n');
    const queued = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, queue: true });
    expect(queued.status).toBe('queued');
    const run = runCli(['status', String(queued.loadId), '--follow'], { env: { DATABASE_URL: db.url } });
    await until(following, 20_000);
    await cancelLoad(db.pool, queued.loadId!);
    const { code, stderr } = await run;
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /^no pgferry worker is running on this database: the load is queued, and runs once one starts \(pgferry worker\)$/m,
    );
    expect(stderr.match(/no pgferry worker/g)).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^load ${queued.loadId}: cancelled$`, 'm'));
  });
});
