// Syncs (pgferry.yaml): increments from a source PostgreSQL — a second database on the test
// server — with the cursor moved in the promoting transaction; mirror mode's deletes; a crash
// between pull and promote.
import { spawn } from 'node:child_process';
import path from 'node:path';

import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { readProject } from '../src/project/project-file.js';
import { rollback } from '../src/rollback.js';
import { runSync } from '../src/syncs/run-sync.js';
import { addTenant } from '../src/tenants.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

const db: TestDatabase = await createTestDatabase();
const source: TestDatabase = await createTestDatabase();
let dir: string;
let projectFile: string;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex', 'mirrored', 'soft', 'crashy']);
  await db.pool.query('alter table app.products add column deleted_at timestamptz');
  productsMapping(dir);
  await source.pool.query(`
    create table items (sku text primary key, name text, price numeric, updated_at timestamptz not null);
    insert into items values
      ('A', 'Apple', 1, '2026-01-01 10:00:00+00'),
      ('B', 'Banana', 2, '2026-01-02 10:00:00+00'),
      ('C', 'Cherry', 3, '2026-01-03 10:00:00+00')`);
  process.env.PGFERRY_TEST_SYNC_SOURCE = source.url;
  const sync = (name: string, tenant: string, extra: string) => `
  ${name}:
    from: env:PGFERRY_TEST_SYNC_SOURCE
    tenant: ${tenant}
    mapping: products
${extra}`;
  projectFile = writeFile(
    dir,
    'pgferry.yaml',
    `mappings: .
syncs:${sync('products', 'acme', '    query: select * from items where updated_at >= :cursor\n    cursor: updated_at\n    mode: upsert')}${sync('wrapped', 'globex', '    table: items\n    cursor: updated_at')}${sync('mirror', 'mirrored', '    table: items\n    cursor: updated_at\n    mode: mirror')}${sync('soft', 'soft', '    table: items\n    mode: mirror\n    soft_delete: deleted_at')}${sync('crashy', 'crashy', '    table: items\n    cursor: updated_at')}`,
  );
});

const target = async (tenant: string) =>
  (
    await db.pool.query(
      'select sku, name, price::text, deleted_at is not null as deleted from app.products where tenant_id = $1 order by sku',
      [tenant],
    )
  ).rows;
const state = async (name: string) =>
  (await db.pool.query('select cursor, cursor_type, last_outcome from ferry.sync_state where sync_name = $1', [name]))
    .rows[0];
const sync = async (name: string, options: { full?: boolean } = {}) =>
  runSync(db.pool, await readProject(projectFile), name, options);

describe('pgferry sync', () => {
  it('pulls everything first, then only rows at or after the cursor: inserts, updates and ties', async () => {
    for (const name of ['products', 'wrapped']) {
      const first = await sync(name);
      expect(first.full).toBe(true);
      expect(first.result.status).toBe('succeeded');
      expect(first.result.counts).toMatchObject({ read: 3, inserted: 3 });
    }
    expect(await state('products')).toMatchObject({ cursor: '2026-01-03 10:00:00+00', cursor_type: 'timestamptz' });

    // A new row tied with the cursor, a newer one, an update; and an old row changed
    // without touching updated_at (an increment cannot see it: that is what --full is for).
    await source.pool.query(`
      insert into items values ('D', 'Date', 4, '2026-01-03 10:00:00+00'), ('E', 'Elder', 5, '2026-01-04 10:00:00+00');
      update items set name = 'Big Banana', updated_at = '2026-01-05 10:00:00+00' where sku = 'B';
      update items set price = 99 where sku = 'A';`);
    for (const name of ['products', 'wrapped']) {
      const next = await sync(name);
      expect(next.full).toBe(false);
      expect(next.cursorFrom).toBe('2026-01-03 10:00:00+00');
      // C (the tie already loaded) comes back unchanged; D, E inserted; B updated.
      expect(next.result.counts).toMatchObject({ read: 4, inserted: 2, updated: 1, unchanged: 1 });
      expect(next.result.sync?.cursor).toBe('2026-01-05 10:00:00+00');
    }
    for (const tenant of ['acme', 'globex']) {
      expect(await target(tenant)).toEqual([
        { sku: 'A', name: 'Apple', price: '1.00', deleted: false },
        { sku: 'B', name: 'Big Banana', price: '2.00', deleted: false },
        { sku: 'C', name: 'Cherry', price: '3.00', deleted: false },
        { sku: 'D', name: 'Date', price: '4.00', deleted: false },
        { sku: 'E', name: 'Elder', price: '5.00', deleted: false },
      ]);
    }
    // Nothing new: one row at the cursor, unchanged; the cursor stays.
    const idle = await sync('products');
    expect(idle.result.counts).toMatchObject({ read: 1, unchanged: 1, inserted: 0, updated: 0 });
    expect((await state('products')).cursor).toBe('2026-01-05 10:00:00+00');

    // --full pulls all again: A's price change arrives.
    const full = await sync('products', { full: true });
    expect(full.result.counts).toMatchObject({ read: 5, updated: 1, unchanged: 4 });
    expect((await target('acme'))[0]).toMatchObject({ sku: 'A', price: '99.00' });
  });
});

describe('the source connection', () => {
  it('is one per run: the connection that described the query stages the rows', async () => {
    const database = new URL(source.url).pathname.slice(1);
    const connect = vi.spyOn(pg.Client.prototype, 'connect');
    try {
      const run = await sync('wrapped');
      expect(run.result.status).toBe('succeeded');
      expect(run.result.counts.read).toBeGreaterThan(0);
      // Connections made, not attempts: without sslmode, a first attempt with TLS is refused
      // by a server without it (libpq's prefer) and is made again without.
      const toSource = connect.mock.contexts.filter(
        (client, i) =>
          (client as pg.Client).database === database && connect.mock.settledResults[i]?.type === 'fulfilled',
      );
      expect(toSource).toHaveLength(1);
    } finally {
      connect.mockRestore();
    }
  });
});

describe('a run that cannot start', () => {
  it('is refused while another process runs the sync, and leaves no connection behind', async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query(`select pg_advisory_lock(ferry.lock_key('sync', 'products'))`);
      await expect(sync('products')).rejects.toThrow('sync products is running in another process');
    } finally {
      await holder.query(`select pg_advisory_unlock(ferry.lock_key('sync', 'products'))`);
      holder.release();
    }
    // Neither the sync's own connection (its last statement, the refused lock) nor a source's
    // is left open.
    const open = async () =>
      Number(
        (
          await db.pool.query(
            `select count(*) from pg_stat_activity
             where pid <> pg_backend_pid()
               and (application_name = 'pgferry source' or query like '%pg_try_advisory_lock(ferry.lock_key(''sync''%')`,
          )
        ).rows[0].count,
      );
    await until(async () => (await open()) === 0, 5_000);
  });

  it('is refused when mode append meets a mapping that updates', async () => {
    const appendProject = writeFile(
      dir,
      'append.yaml',
      `mappings: .\nsyncs:\n  appending:\n    from: env:PGFERRY_TEST_SYNC_SOURCE\n    tenant: acme\n    mapping: products\n    table: items\n    mode: append\n`,
    );
    await expect(runSync(db.pool, await readProject(appendProject), 'appending')).rejects.toThrow(
      'mode append adds rows and leaves the rows already there as they are',
    );
  });
});

describe('mirror mode', () => {
  it('a full pull deletes the rows the source no longer has; rolling the load back brings them back', async () => {
    await source.pool.query(`insert into items values ('Z', 'Zucchini', 26, '2026-01-01 00:00:00+00')`);
    expect((await sync('mirror')).result.counts).toMatchObject({ inserted: 6 });
    await source.pool.query(`delete from items where sku = 'Z'`);
    // An increment cannot tell a deleted row: nothing is deleted.
    const increment = await sync('mirror');
    expect(increment.full).toBe(false);
    expect(increment.result.sync?.deleted).toBeUndefined();
    expect((await target('mirrored')).map((r) => r.sku)).toContain('Z');

    const full = await sync('mirror', { full: true });
    expect(full.result.sync).toMatchObject({ deleted: 1, soft: false });
    expect((await target('mirrored')).map((r) => r.sku)).toEqual(['A', 'B', 'C', 'D', 'E']);
    // Other tenants' rows are not the mirror's business.
    expect((await target('acme')).length).toBe(5);

    const undone = await rollback(db.pool, full.result.loadId!);
    expect(undone.outcome).toBe('rolled_back');
    expect((await target('mirrored')).map((r) => r.sku)).toEqual(['A', 'B', 'C', 'D', 'E', 'Z']);
  });

  it('soft_delete marks absent rows instead; a pull with rejects deletes nothing', async () => {
    await source.pool.query(`insert into items values ('Y', 'Yam', 25, '2026-01-01 00:00:00+00')`);
    await sync('soft');
    await source.pool.query(`delete from items where sku = 'Y'`);
    const run = await sync('soft');
    expect(run.full).toBe(true); // no cursor: every run is a full pull
    expect(run.result.sync).toMatchObject({ deleted: 1, soft: true });
    expect((await target('soft')).filter((r) => r.deleted).map((r) => r.sku)).toEqual(['Y']);

    // A row without a name is rejected by the transform: its key cannot be trusted, so nothing is deleted.
    await source.pool.query(`update items set name = null where sku = 'A'; delete from items where sku = 'E'`);
    const rejected = await sync('soft');
    expect(rejected.result.counts.rejected).toBe(1);
    expect(rejected.result.sync?.deleted).toBe(0);
    expect(rejected.result.sync?.kept).toMatch(/rejected/);
    expect((await target('soft')).filter((r) => r.deleted).map((r) => r.sku)).toEqual(['Y']);
    await source.pool.query(`update items set name = 'Apple' where sku = 'A'`);
  });
});

describe('a crash between pull and promote', () => {
  it('leaves the cursor where it was; the next run pulls the same rows again, nothing lost or doubled', async () => {
    expect((await sync('crashy')).result.status).toBe('succeeded');
    const before = await state('crashy');
    await source.pool.query(`insert into items values ('F', 'Fig', 6, '2026-02-01 10:00:00+00')`);
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.resolve('test/helpers/sync-until.ts'),
          JSON.stringify({ url: db.url, project: projectFile, sync: 'crashy' }),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } },
      );
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('error', reject);
      child.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve(text) : reject(new Error(text))));
    });
    const killed = Number(/registered (\d+)/.exec(out)![1]);
    expect(await state('crashy')).toEqual(before);
    expect((await target('crashy')).map((r) => r.sku)).not.toContain('F');

    const again = await sync('crashy');
    expect(again.superseded).toEqual([killed]);
    expect(again.result.counts.inserted).toBe(1);
    expect((await state('crashy')).cursor).toBe('2026-02-01 10:00:00+00');
    const { rows } = await db.pool.query(
      `select sku, count(*)::int as n from app.products where tenant_id = 'crashy' group by sku having count(*) > 1`,
    );
    expect(rows).toEqual([]);
    const { rows: loads } = await db.pool.query('select status from ferry.loads where id = $1', [killed]);
    expect(loads[0].status).toBe('failed');
  });
});

const mysqlUrl = process.env.PGFERRY_TEST_MYSQL_URL;
if (!mysqlUrl) console.log('sync from mysql:// tests skipped: PGFERRY_TEST_MYSQL_URL is not set');

describe.skipIf(!mysqlUrl)('a sync from MySQL/MariaDB', () => {
  let connection: mysql.Connection;
  const table = `pgferry_sync_${process.pid}`;
  let project: string;

  beforeAll(async () => {
    connection = await mysql.createConnection({ uri: mysqlUrl!, multipleStatements: true });
    await connection.query(`
      drop table if exists ${table};
      create table ${table} (sku varchar(20) primary key, name varchar(50), price decimal(10,2), changed datetime(3));
      insert into ${table} values ('M1', 'One', 1, '2026-03-01 10:00:00.500'), ('M2', 'It''s two', 2, '2026-03-02 10:00:00')`);
    await addTenant(db.pool, 'from_mysql');
    process.env.PGFERRY_TEST_SYNC_MYSQL = mysqlUrl;
    project = writeFile(
      dir,
      'mysql.yaml',
      `mappings: .
syncs:
  from_mysql:
    from: env:PGFERRY_TEST_SYNC_MYSQL
    query: select * from ${table} where changed >= :cursor
    cursor: changed
    tenant: from_mysql
    mapping: products
`,
    );
  });

  afterAll(async () => {
    await connection?.query(`drop table if exists ${table}`);
    await connection?.end();
  });

  it('moves a DATETIME cursor, fractions of a second kept', async () => {
    const run = async () => runSync(db.pool, await readProject(project), 'from_mysql');
    expect((await run()).result.counts).toMatchObject({ read: 2, inserted: 2 });
    expect(await state('from_mysql')).toMatchObject({ cursor: '2026-03-02 10:00:00.000', cursor_type: 'timestamp' });
    await connection.query(`insert into ${table} values ('M3', 'Three', 3, '2026-03-02 10:00:00.001')`);
    const next = await run();
    expect(next.cursorFrom).toBe('2026-03-02 10:00:00.000');
    expect(next.result.counts).toMatchObject({ read: 2, inserted: 1, unchanged: 1 });
    expect((await state('from_mysql')).cursor).toBe('2026-03-02 10:00:00.001');
    expect((await target('from_mysql')).map((r) => r.name)).toEqual(['One', "It's two", 'Three']);
  });
});
