// Point 8 of issue 25 (the CLI's part): Ctrl-C during a load printed nothing; it says what
// happened and the exact `pgferry resume N` to run, exits 130, and that command finishes it.
import { spawn } from 'node:child_process';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { cliEnv, runCli } from './helpers/run-cli.js';
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

describe('Ctrl-C during pgferry load', () => {
  it('says where the load stopped and how to finish it; exit 130; pgferry resume N then finishes it', async () => {
    const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\nB,b,2\n');
    // The target table locked: the load waits on it, promoting, until Ctrl-C.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table app.products in access exclusive mode');
      const env = cliEnv({ DATABASE_URL: db.url });
      const child = spawn(
        process.execPath,
        [path.resolve('bin/pgferry.js'), 'load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      await until(async () => {
        const { rows } = await db.pool.query(
          `select from pg_locks where not granted and relation = 'app.products'::regclass`,
        );
        return rows.length > 0;
      }, 20_000);
      const loadId = Number(/^load (\d+) registered/m.exec(stderr)![1]);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(stderr).toContain(`Ctrl-C: load ${loadId} stopped while promoting`);
      expect(stderr).toMatch(new RegExp(`^  to finish it: +pgferry resume ${loadId}$`, 'm'));
      expect(stderr).toMatch(new RegExp(`^  to abandon it: +pgferry cancel ${loadId}$`, 'm'));
      await blocker.query('commit');

      const resumed = await runCli(['resume', String(loadId)], { env: { DATABASE_URL: db.url } });
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stdout).toMatch(new RegExp(`load ${loadId} succeeded`));
      const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'acme'`);
      expect(rows[0].n).toBe(2);
    } finally {
      await blocker.query('rollback').catch(() => {});
      blocker.release();
    }
  });
});
