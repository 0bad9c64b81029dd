import { beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { load } from '../src/load/load.js';
import { productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let csv: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  csv = writeFile(dir, 'items.csv', 'Item Code,Item Name,Unit Price\nA1,Anvil,10\n');
});

async function failure(mappingText: string): Promise<PgferryError> {
  const mapping = writeFile(dir, `m${Math.random().toString(36).slice(2)}.sql`, mappingText);
  const error = await load(db.pool, { file: csv, tenant: 'acme', mapping, force: true }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PgferryError);
  return error as PgferryError;
}

async function nothingMoved(): Promise<void> {
  expect((await db.pool.query('select count(*)::int as n from app.products')).rows[0].n).toBe(0);
  const { rows } = await db.pool.query(`select count(*)::int as n from pg_tables where schemaname like 'ferry_t_%'`);
  expect(rows[0].n).toBe(0);
}

describe('mapping errors are reported with file and line before any data moves', () => {
  it('an unknown staged column names the mapping line and column, and lists the staged columns', async () => {
    const error = await failure(`-- target: app.products
-- key: sku
select
  s."Item Code" as sku,
  s."Item Nmae" as name,
  s."Unit Price" as price
from staged s
`);
    expect(error.location).toMatchObject({ line: 5, column: 3 });
    expect(error.location.file).toMatch(/\.sql$/);
    expect(error.message).toMatch(/column s\.Item Nmae does not exist/);
    expect(error.hint).toMatch(/"Item Code", "Item Name", "Unit Price"/);
    await nothingMoved();
  });

  it('an output column the target lacks, a missing NOT NULL column and the tenant column, all at once', async () => {
    const error = await failure(`-- target: app.products
-- key: sku
select s."Item Code" as sku, s."Item Name" as title, 'x' as tenant_id
from staged s
`);
    expect(error.message).toMatch(/has no column title/);
    expect(error.message).toMatch(/tenant column tenant_id/);
    expect(error.message).toMatch(/column name of app\.products is NOT NULL without a default/);
    expect(error.message).toMatch(/column price of app\.products is NOT NULL/);
    await nothingMoved();
  });

  it('a key column the mapping does not output', async () => {
    const error = await failure(`-- target: app.products
-- key: sku, name
select s."Item Code" as sku, s."Unit Price" as price, 'n' as name2
from staged s
`);
    expect(error.message).toMatch(/no column name2/);
    await nothingMoved();
  });

  it('a bad header line', async () => {
    const error = await failure(`-- target: app.products
-- key: sku
-- on_conflict: sometimes
select s."Item Code" as sku from staged s
`);
    expect(error.location.line).toBe(3);
    expect(error.message).toMatch(/on_conflict must be/);
  });

  it('a target that does not exist, or is not protected', async () => {
    const missing = await failure(`-- target: app.nope
-- key: sku
select 1 as sku from staged s
`);
    expect(missing.message).toMatch(/target table app\.nope does not exist/);
    expect(missing.location.line).toBe(1);
    await db.pool.query('create table app.unprotected (tenant_id text, sku text primary key)');
    const unprotected = await failure(`-- target: app.unprotected
-- key: sku
select s."Item Code" as sku from staged s
`);
    expect(unprotected.message).toMatch(/not protected/);
    expect(unprotected.hint).toMatch(/pgferry tenant protect app\.unprotected/);
  });

  it('a mapping reading a table the tenant may not read is refused before data moves', async () => {
    await db.pool.query(
      `create table app.secrets (tenant_id text, code text); insert into app.secrets values ('bob', 'x')`,
    );
    const error = await failure(`-- target: app.products
-- key: sku
select s."Item Code" as sku, s."Item Name" as name,
       (select min(code) from app.secrets) as price
from staged s
`);
    expect(error.message).toMatch(/permission denied for table secrets/);
    expect(error.hint).toMatch(/tenant protect/);
    await nothingMoved();
  });

  it('a SQL syntax error and a broken check expression', async () => {
    const syntax = await failure(`-- target: app.products
-- key: sku
select s."Item Code" as sku,, s."Item Name" as name
from staged s
`);
    expect(syntax.location.line).toBe(3);
    const check = await failure(`-- target: app.products
-- key: sku
-- check: nonexistent > 0 | never
select s."Item Code" as sku, s."Item Name" as name, s."Unit Price" as price
from staged s
`);
    expect(check.message).toMatch(/nonexistent/);
    await nothingMoved();
  });

  it('a value that makes the mapping itself fail rejects that line only (rule mapping_error)', async () => {
    const mapping = writeFile(
      dir,
      'casts.sql',
      `-- target: app.products
-- key: sku
select s."Item Code" as sku, s."Item Name" as name, (100 / s."Unit Price"::int)::text as price
from staged s
`,
    );
    const file = writeFile(
      dir,
      'zeros.csv',
      'Item Code,Item Name,Unit Price\nA1,Anvil,10\nB2,Bolt,0\nC3,Cog,x\nD4,Dial,4\n',
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ staged: 4, inserted: 2, rejected: 2 });
    const { rows } = await db.pool.query(
      `select line::int, rule, message from ferry.rejects where load_id = $1 order by line`,
      [result.loadId],
    );
    expect(rows).toEqual([
      { line: 3, rule: 'mapping_error', message: 'division by zero' },
      { line: 4, rule: 'mapping_error', message: 'invalid input syntax for type integer: "x"' },
    ]);
    await db.pool.query('truncate app.products');
  });

  it('an unknown tenant or a missing file is a usage error', async () => {
    const mapping = writeFile(
      dir,
      'ok.sql',
      `-- target: app.products
-- key: sku
select s."Item Code" as sku, s."Item Name" as name, s."Unit Price" as price from staged s
`,
    );
    await expect(load(db.pool, { file: csv, tenant: 'nobody', mapping })).rejects.toThrow(/unknown tenant 'nobody'/);
    await expect(load(db.pool, { file: `${dir}/missing.csv`, tenant: 'acme', mapping })).rejects.toThrow(
      /no such file/,
    );
  });
});
