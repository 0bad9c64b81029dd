// A rollback whose client dies stops on the server too (issue 23): the CLI killed in the middle
// of a rollback leaves no backend running it, the tenant's lock free, and the load not rolled
// back at all (the rollback is one transaction).
import { spawn } from 'node:child_process';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { rollback } from '../src/rollback.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  mapping = productsMapping(dir);
});

async function run(name: string, csv: string): Promise<number> {
  const file = writeFile(dir, name, `sku,name,price\n${csv}`);
  const result = await load(db.pool, { file, tenant: 'acme', mapping, force: true });
  expect(result.status).toBe('succeeded');
  return result.loadId!;
}

async function products(): Promise<string[]> {
  const { rows } = await db.pool.query(`select sku || ' ' || name as row from app.products order by sku`);
  return rows.map((r) => r.row);
}

/** Backends (but this test's) running a rollback. */
async function rollbackBackends(): Promise<number> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n from pg_stat_activity
     where datname = current_database() and pid <> pg_backend_pid() and query like '%ferry.rollback_load%'`,
  );
  return rows[0].n;
}

async function waitFor(what: string, condition: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('pgferry rollback whose client dies', () => {
  it('stops on the server within seconds: no backend left, the lock free, nothing rolled back', async () => {
    await run('one.csv', 'A,apple,1\nB,banana,2\n');
    const second = await run('two.csv', 'A,apricot,10\nC,cherry,3\nD,date,4\n');
    const loaded = await products();

    // A row the rollback must delete is locked: the rollback waits there, mid-statement,
    // holding the tenant's lock, as a long rollback would be busy.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query(`select from app.products where sku = 'C' for update`);
      const child = spawn(process.execPath, [path.resolve('bin/pgferry.js'), 'rollback', String(second)], {
        env: { PATH: process.env.PATH, DATABASE_URL: db.url },
        stdio: 'ignore',
      });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      await waitFor(
        'the rollback to wait for the locked row',
        async () => {
          const { rows } = await db.pool.query(
            `select count(*)::int as n from pg_stat_activity
             where query like '%ferry.rollback_load%' and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
          );
          return rows[0].n === 1;
        },
        20_000,
      );

      child.kill('SIGKILL');
      await exited;
      const killedAt = Date.now();
      // The server checks its client every second (client_connection_check_interval).
      await waitFor('the rollback to stop on the server', async () => (await rollbackBackends()) === 0, 5_000);
      expect(Date.now() - killedAt).toBeLessThan(5_000);
    } finally {
      await blocker.query('rollback');
      blocker.release();
    }

    // The tenant's lock is free: a load of that tenant and table takes it at once.
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query('select ferry.try_lock_target($1) as holder', [second]);
      expect(rows[0].holder).toBeNull();
    } finally {
      await client.query('rollback');
      client.release();
    }
    // All or nothing: nothing was undone, and the load can still be rolled back.
    const { rows } = await db.pool.query('select status from ferry.loads where id = $1', [second]);
    expect(rows[0].status).toBe('succeeded');
    expect(await products()).toEqual(loaded);
    expect(await rollback(db.pool, second)).toMatchObject({ outcome: 'rolled_back', deleted: 2, restored: 1 });
    expect(await products()).toEqual(['A apple', 'B banana']);
  });
});
