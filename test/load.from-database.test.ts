// load --from: a source database's table or query, staged straight from it. PostgreSQL: a
// second database on the test server. MySQL/MariaDB: PGFERRY_TEST_MYSQL_URL (CI sets it to
// the machine's service), else skipped with the reason printed.
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
const source: TestDatabase = await createTestDatabase();
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex']);
  productsMapping(dir);
  await source.pool.query(`
    create schema legacy;
    create table legacy.items (sku text primary key, name text, price numeric, active boolean);
    insert into legacy.items values
      ('L1', 'Lamp, "deluxe"', 12.5, true),
      ('L2', E'two\\nlines', 0.25, true),
      ('L3', 'Ünïcödé 😀', 3, false),
      ('L4', '', 4, true)`);
});

/**
 * The source's URL with a password in it (the embedded server's own; on a trust-auth server
 * one it ignores), and that password: pgferry must never keep it.
 */
function urlWithPassword(): string {
  const url = new URL(source.url);
  if (!url.password) url.password = 'not-to-be-kept';
  return url.toString();
}
const SECRET = decodeURIComponent(new URL(urlWithPassword()).password);

async function products(tenant: string): Promise<unknown[]> {
  const { rows } = await db.pool.query('select sku, name, price from app.products where tenant_id = $1 order by sku', [
    tenant,
  ]);
  return rows;
}

describe('load --from postgres://', () => {
  it('a table: every row, NULL and empty text kept apart; the password is recorded nowhere', async () => {
    const result = await load(db.pool, {
      from: urlWithPassword(),
      table: 'legacy.items',
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      maxRejects: 5,
    });
    expect(result.status).toBe('succeeded');
    expect(result.source).toMatchObject({ format: 'postgres', table: 'legacy.items' });
    // L4's empty name: a NOT NULL text column takes '' (it is a value), so all four load.
    expect(result.counts).toMatchObject({ read: 4, staged: 4, inserted: 4, unparseable: 0 });
    expect(await products('acme')).toEqual([
      { sku: 'L1', name: 'Lamp, "deluxe"', price: '12.50' },
      { sku: 'L2', name: 'two\nlines', price: '0.25' },
      { sku: 'L3', name: 'Ünïcödé 😀', price: '3.00' },
      { sku: 'L4', name: '', price: '4.00' },
    ]);
    expect(JSON.stringify(result)).not.toContain(SECRET);
    const { rows } = await db.pool.query(
      `select l.source, l.options::text as options, l.error, a.details::text as audit
       from ferry.loads l left join ferry.audit a on a.load_id = l.id where l.id = $1`,
      [result.loadId],
    );
    expect(JSON.stringify(rows)).not.toContain(SECRET);
    const shown = new URL(source.url);
    shown.password = '';
    expect(rows[0].source).toBe(shown.toString());
  });

  it("booleans are staged as true/false, as from MySQL, JSON and XLSX (not COPY's t/f)", async () => {
    const mapping = writeFile(
      dir,
      'flags.sql',
      `-- target: app.products
-- key: sku
select s.sku as sku, s.active as name, s.price as price
from staged s
`,
    );
    await addTenant(db.pool, 'flags');
    const result = await load(db.pool, { from: source.url, table: 'legacy.items', tenant: 'flags', mapping });
    expect(result.error).toBeUndefined();
    const { rows } = await db.pool.query(`select sku, name from app.products where tenant_id = 'flags' order by sku`);
    expect(rows).toEqual([
      { sku: 'L1', name: 'true' },
      { sku: 'L2', name: 'true' },
      { sku: 'L3', name: 'false' },
      { sku: 'L4', name: 'true' },
    ]);
  });

  it('a query from env:NAME; the URL stays in the environment', async () => {
    process.env.PGFERRY_TEST_SOURCE = urlWithPassword();
    try {
      const result = await load(db.pool, {
        from: 'env:PGFERRY_TEST_SOURCE',
        query: "select sku, upper(name) as name, price from legacy.items where active and name <> ''",
        tenant: 'globex',
        mapping: 'products',
        mappingsDir: dir,
      });
      expect(result.source).toMatchObject({ format: 'postgres', from: 'env:PGFERRY_TEST_SOURCE' });
      expect(result.counts).toMatchObject({ read: 2, inserted: 2 });
      const { rows } = await db.pool.query('select source from ferry.loads where id = $1', [result.loadId]);
      expect(rows[0].source).toBe('env:PGFERRY_TEST_SOURCE');
    } finally {
      delete process.env.PGFERRY_TEST_SOURCE;
    }
  });

  it('the CLI: a bad query, an unset variable, a missing --table/--query are one-line errors, exit 2', async () => {
    const env = { DATABASE_URL: db.url };
    const base = ['load', '-t', 'acme', '-m', 'products', '--mappings-dir', dir];
    const badQuery = await runCli([...base, '--from', urlWithPassword(), '--query', 'select nope from legacy.items'], {
      env,
    });
    expect(badQuery.code).toBe(2);
    expect(badQuery.stderr).toMatch(/the source postgres:\/\/.* refused the query: column "nope" does not exist/);
    expect(badQuery.stderr).not.toContain(SECRET);
    const unset = await runCli([...base, '--from', 'env:PGFERRY_NOT_SET', '--table', 'x'], { env });
    expect(unset.stderr).toMatch(/the environment variable PGFERRY_NOT_SET is not set/);
    const neither = await runCli([...base, '--from', source.url], { env });
    expect(neither.stderr).toMatch(/--from needs --table or --query/);
    const both = await runCli([...base, 'file.csv', '--from', source.url, '--table', 'legacy.items'], { env });
    expect(both.stderr).toMatch(/give a file, or a source database with --from \(one of them\)/);
    for (const run of [unset, neither, both]) expect(run.code).toBe(2);
  });
});

const mysqlUrl = process.env.PGFERRY_TEST_MYSQL_URL;
if (!mysqlUrl) console.log('load --from mysql:// tests skipped: PGFERRY_TEST_MYSQL_URL is not set');

describe.skipIf(!mysqlUrl)('load --from mysql://', () => {
  let connection: mysql.Connection;
  const table = `pgferry_items_${process.pid}`;

  beforeAll(async () => {
    connection = await mysql.createConnection({ uri: mysqlUrl!, charset: 'utf8mb4', multipleStatements: true });
    await connection.query(`set session sql_mode = ''`);
    await connection.query(`
      drop table if exists ${table};
      create table ${table} (
        id int primary key, name varchar(100) character set utf8mb4, born date, seen datetime,
        active tinyint(1), photo blob, flags bit(4), note text
      ) character set utf8mb4;
      insert into ${table} values
        (1, 'Zoë 😀', '2020-02-29', '2026-11-21 10:11:12', 1, x'00ff10', b'0101', 'a "quote", a comma'),
        (2, 'Zero dates', '0000-00-00', '0000-00-00 00:00:00', 0, null, b'0000', ''),
        (3, null, null, null, null, '', null, null)`);
    await db.pool.query(`
      create table app.legacy (
        tenant_id text not null, id integer not null, name text, born date, seen timestamp,
        active boolean, photo bytea, flags bit(4), note text, primary key (tenant_id, id))`);
    await protectTable(db.pool, 'app.legacy');
    await addTenant(db.pool, 'mysql_tenant');
  });

  afterAll(async () => {
    await connection?.query(`drop table if exists ${table}`);
    await connection?.end();
  });

  it('zero dates become NULL, tinyint(1) a boolean, blobs bytea, bits bits, utf8mb4 text intact', async () => {
    const mapping = writeFile(
      dir,
      'legacy.sql',
      `-- target: app.legacy
-- key: id
select s.id as id, s.name as name, s.born as born, s.seen as seen, s.active as active,
       s.photo as photo, s.flags as flags, s.note as note
from staged s
`,
    );
    const result = await load(db.pool, { from: mysqlUrl!, table, tenant: 'mysql_tenant', mapping });
    expect(result.error).toBeUndefined();
    expect(result.source).toMatchObject({ format: 'mysql' });
    expect(result.counts).toMatchObject({ read: 3, inserted: 3, rejected: 0 });
    const { rows } = await db.pool.query(
      `select id, name, born::text, seen::text, active, encode(photo, 'hex') as photo, flags::text, note
       from app.legacy where tenant_id = 'mysql_tenant' order by id`,
    );
    expect(rows).toEqual([
      {
        id: 1,
        name: 'Zoë 😀',
        born: '2020-02-29',
        seen: '2026-11-21 10:11:12',
        active: true,
        photo: '00ff10',
        flags: '0101',
        note: 'a "quote", a comma',
      },
      { id: 2, name: 'Zero dates', born: null, seen: null, active: false, photo: null, flags: '0000', note: '' },
      { id: 3, name: null, born: null, seen: null, active: null, photo: '', flags: null, note: null },
    ]);
  });

  it('tinyint(1) is staged as true/false, as a PostgreSQL boolean is', async () => {
    const mapping = writeFile(
      dir,
      'legacy-flags.sql',
      `-- target: app.legacy
-- key: id
select s.id as id, s.active as note
from staged s
`,
    );
    await addTenant(db.pool, 'mysql_flags');
    const result = await load(db.pool, { from: mysqlUrl!, table, tenant: 'mysql_flags', mapping });
    expect(result.error).toBeUndefined();
    const { rows } = await db.pool.query(`select id, note from app.legacy where tenant_id = 'mysql_flags' order by id`);
    expect(rows).toEqual([
      { id: 1, note: 'true' },
      { id: 2, note: 'false' },
      { id: 3, note: null },
    ]);
  });
});
