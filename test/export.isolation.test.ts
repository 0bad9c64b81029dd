// Tries to break tenant isolation through `pgferry export`: acme exports, with --where and
// --query written to reach bob's rows, change data or take another role. bob's rows carry the
// marker BOBSECRET. Each attempt must either export only acme's rows or fail cleanly, and
// leave every row as it was. The loader here is a superuser, the case where SET ROLE alone
// would not hold: `set_config('role', 'postgres', true)` would take the superuser back.
import { PassThrough } from 'node:stream';

import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { type ExportOptions, exportRows } from '../src/export/export-rows.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

// At the top level: the database is dropped after the file (an afterAll hook).
const db: TestDatabase = await createTestDatabase();
let acmeRole: string;

const SECRET = 'BOBSECRET';

interface Attempt {
  text?: string;
  error?: unknown;
}

/** Exports for acme into a string; never throws. */
async function attempt(options: Omit<ExportOptions, 'output' | 'tenant'>): Promise<Attempt> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  try {
    await exportRows(db.pool, { tenant: 'acme', format: 'csv', ...options, output: sink });
    return { text: Buffer.concat(chunks).toString('utf8') };
  } catch (error) {
    return { error, text: Buffer.concat(chunks).toString('utf8') };
  }
}

/** Failed with a user error (exit 2), and nothing of bob's in what it said or wrote. */
function expectRefused(a: Attempt, message?: RegExp): void {
  expect(a.error, `expected a refusal, got: ${a.text}`).toBeInstanceOf(PgferryError);
  expect((a.error as PgferryError).exitCode).toBe(2);
  if (message) expect((a.error as Error).message).toMatch(message);
  expect(`${(a.error as Error).message} ${a.text}`).not.toContain(SECRET);
}

async function snapshot(): Promise<string> {
  const { rows } = await db.pool.query(`select tenant_id, sku, name from app.products order by tenant_id, sku`);
  const { rows: seq } = await db.pool.query(`select last_value from app.products_id_seq`);
  const { rows: largeObjects } = await db.pool.query(`select count(*)::int as n from pg_largeobject_metadata`);
  return JSON.stringify({ rows, seq, largeObjects });
}

let before: string;

beforeAll(async () => {
  await db.pool.query('create schema app');
  await db.pool.query(`
    create table app.products (
      tenant_id text   not null,
      id        serial,
      sku       text   not null,
      name      text   not null,
      primary key (tenant_id, sku)
    )`);
  await addTenant(db.pool, 'acme');
  await addTenant(db.pool, 'bob');
  await protectTable(db.pool, 'app.products');
  await db.pool.query(`
    insert into app.products (tenant_id, sku, name) values
      ('acme', 'A1', 'Anvil'), ('acme', 'A2', 'Axe'),
      ('bob', 'B1', '${SECRET}-one'), ('bob', 'B2', '${SECRET}-two')`);
  // Something of bob's outside the table: a table in bob's own schema, and bob's catalog row.
  await db.pool.query(`create table ferry_t_bob.notes as select '${SECRET}-note' as note`);
  await db.pool.query(`grant select on ferry_t_bob.notes to ${await roleOf('bob')}`);
  acmeRole = await roleOf('acme');
  before = await snapshot();
});

beforeEach(async () => {
  expect(await snapshot()).toBe(before);
});

async function roleOf(tenant: string): Promise<string> {
  const { rows } = await db.pool.query('select role_name from ferry.tenants where slug = $1', [tenant]);
  return rows[0].role_name;
}

const ACME_ONLY = 'sku,name\nA1,Anvil\nA2,Axe\n';

describe('--where cannot widen --table beyond the tenant', () => {
  it.each([
    ['true'],
    ['1=1) or (1=1'],
    ['true) or (true'],
    ["tenant_id = 'acme' or tenant_id = 'bob'"],
    ['true --'],
    ['true /* unclosed'],
  ])('--where %j exports acme rows only (or fails)', async (where) => {
    const a = await attempt({ table: 'app.products', columns: ['sku', 'name'], where });
    if (a.error) expectRefused(a);
    else expect(a.text).toBe(ACME_ONLY);
    expect(await snapshot()).toBe(before);
  });

  it("--where asking for bob's rows gets none", async () => {
    const a = await attempt({ table: 'app.products', columns: ['sku', 'name'], where: "tenant_id = 'bob'" });
    expect(a.text).toBe('sku,name\n');
  });

  it('--where with a UNION over the table still sees only acme', async () => {
    const a = await attempt({
      table: 'app.products',
      columns: ['tenant_id', 'sku'],
      where: "false) union all (select tenant_id, sku from app.products where tenant_id <> 'acme'",
    });
    expect(a.error).toBeUndefined();
    expect(a.text).toBe('tenant_id,sku\n');
    const b = await attempt({
      table: 'app.products',
      columns: ['tenant_id', 'sku'],
      where: 'true) union all (select tenant_id, name from app.products',
    });
    expect(b.text).toBe('tenant_id,sku\nacme,A1\nacme,A2\nacme,Anvil\nacme,Axe\n');
  });

  it('--where closing the wrapper to add statements is refused before anything runs', async () => {
    // Each makes the whole text valid SQL of several statements (the last one balancing the
    // parentheses and the ORDER BY that follow the --where).
    const tail = 'select * from (select 1 as tenant_id, 1 as sku where (true';
    for (const middle of [
      'delete from app.products',
      "update app.products set name = 'pwned'",
      'set role postgres',
      `select set_config('role', 'postgres', false)`,
    ]) {
      const a = await attempt({ table: 'app.products', where: `true) order by 1) as export; ${middle}; ${tail}` });
      expectRefused(a, /^the export query must be one statement$/);
      expect(await snapshot()).toBe(before);
    }
  });
});

describe('--query runs as the tenant and cannot change role', () => {
  it('runs as acme’s role', async () => {
    const a = await attempt({ query: 'select current_user as who, session_user is not null as s' });
    expect(a.text).toBe(`who,s\n${acmeRole},t\n`);
  });

  it('select * from the table: acme rows only', async () => {
    expect((await attempt({ query: 'select sku, name from app.products order by sku' })).text).toBe(ACME_ONLY);
    expect((await attempt({ query: 'table app.products' })).text).not.toContain(SECRET);
  });

  it("set_config('role', …) and set_config('session_authorization', …) are refused", async () => {
    for (const query of [
      `select set_config('role', 'postgres', true) as r, query_to_xml('select * from app.products', true, false, '') as x`,
      `select set_config('role', 'postgres', false) as r, (select string_agg(name, ',') from app.products) as x`,
      `select set_config('session_authorization', 'postgres', true) as r, (select string_agg(name, ',') from app.products) as x`,
      `select x from (select set_config('role', 'postgres', true)) s, lateral (select string_agg(name, ',') as x from app.products) t`,
    ]) {
      expectRefused(await attempt({ query }), /cannot set parameter/);
    }
  });

  it('reset role, set role, set session authorization are not queries', async () => {
    for (const query of ['reset role', 'set role postgres', 'set session authorization postgres']) {
      expectRefused(await attempt({ query }), /must be a single SELECT/);
    }
    // Even past the client-side check, PostgreSQL refuses them: they cannot be a subquery.
    for (const query of ['reset role', 'set role postgres']) {
      await expect(db.pool.query('select * from ferry.prepare_export($1, $2)', ['acme', query])).rejects.toThrow(
        /syntax error/,
      );
    }
  });

  it('query_to_xml and friends run as the tenant too', async () => {
    for (const query of [
      `select query_to_xml('select * from app.products', true, false, '') as x`,
      `select table_to_xml('app.products', true, false, '') as x`,
      `select cursor_to_xml('c', 10, true, false, '') as x`,
      `select query_to_xml('reset role; select * from app.products', true, false, '') as x`,
      `select query_to_xml('select set_config(''role'', ''postgres'', true)', true, false, '') as x`,
    ]) {
      const a = await attempt({ query });
      if (a.error) expectRefused(a);
      else {
        expect(a.text, query).toContain('Anvil');
        expect(a.text, query).not.toContain(SECRET);
      }
    }
  });

  it("reading bob's schema, the catalog or server files is refused", async () => {
    for (const query of [
      'select * from ferry_t_bob.notes',
      'select * from ferry.tenants',
      'select * from ferry.audit',
      `select pg_read_file('/etc/hostname')`,
      `select * from pg_ls_dir('.')`,
    ]) {
      expectRefused(await attempt({ query }), /permission denied/);
    }
  });

  it('an application policy TO public USING (true) does not widen what acme sees', async () => {
    await db.pool.query('create policy app_open on app.products for select to public using (true)');
    try {
      expect((await attempt({ query: 'select sku, name from app.products order by sku' })).text).toBe(ACME_ONLY);
    } finally {
      await db.pool.query('drop policy app_open on app.products');
    }
  });
});

describe('an export cannot change anything', () => {
  it('data-modifying statements and WITH are refused; nothing changed', async () => {
    for (const query of [
      'with d as (delete from app.products returning *) select * from d',
      "with u as (update app.products set name = 'pwned' returning *) select 1",
      "with i as (insert into app.products (tenant_id, sku, name) values ('bob', 'X', 'x') returning *) select 1",
      'select 1; delete from app.products',
      'select 1) as export; delete from app.products; select * from (select 1',
      "select 1) as export; select set_config('role', 'postgres', false); select * from (select 1",
      'delete from app.products returning *',
      'select * into pwned from app.products',
      'select * from app.products for update',
    ]) {
      expectRefused(await attempt({ query }));
      expect(await snapshot(), query).toBe(before);
    }
  });

  it('a function that writes fails: the transaction is read-only, and the tenant cannot undo that', async () => {
    for (const query of [
      `select nextval('app.products_id_seq')`,
      `select set_config('transaction_read_only', 'off', true), nextval('app.products_id_seq')`,
      `select set_config('default_transaction_read_only', 'off', true), nextval('app.products_id_seq')`,
    ]) {
      expectRefused(await attempt({ query }));
      expect(await snapshot(), query).toBe(before);
    }
    // PostgreSQL 16 refuses lo_create() in a read-only transaction; 15 lets it run, and the
    // export's ROLLBACK takes the large object away again.
    const a = await attempt({ query: 'select lo_create(0) as oid' });
    if (a.error) expectRefused(a, /read-only transaction/);
    expect(await snapshot()).toBe(before);
  });

  it('a text containing the dollar quote pgferry uses cannot end the function body', async () => {
    const a = await attempt({ query: `select '$pgferry$ $$ $pgferry_0$' as x` });
    expect(a.text).toBe('x\n$pgferry$ $$ $pgferry_0$\n');
  });

  it('the functions an export installs are gone afterwards, and were never callable by tenants', async () => {
    await attempt({ query: 'select 1' });
    await attempt({ query: 'select 1/0' });
    const { rows } = await db.pool.query(
      `select n.nspname, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where p.proname like 'export%' and n.nspname like 'ferry_t_%'`,
    );
    expect(rows).toEqual([]);
  });
});
