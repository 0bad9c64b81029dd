// `tenant protect`: enabling RLS on an application's table must never silently lock the
// application out, and must always leave every tenant role confined to its rows — whatever
// the roles, grants, tenant names and identifiers involved.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { addTenant, type ProtectOptions, protectTable } from '../src/tenants.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { createRoleAsMember } from './helpers/test-role.js';

const SUFFIX = randomBytes(3).toString('hex');
const createdRoles: string[] = [];

// Roles are cluster-wide: each gets this file's suffix, and all are dropped at the end, after
// their grants and policies in this file's databases (if those still exist).
const databases: string[] = [];
afterAll(async () => {
  const adminUrl = inject('adminUrl');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const roles = createdRoles.filter((r) => /^[a-z0-9_]+$/.test(r));
    const { rows } = await admin.query(`select datname from pg_database where datname = any($1)`, [databases]);
    for (const { datname } of rows) {
      const url = new URL(adminUrl);
      url.pathname = `/${datname}`;
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        const { rows: existing } = await client.query(`select rolname from pg_roles where rolname = any($1)`, [roles]);
        if (existing.length > 0) await client.query(`drop owned by ${existing.map((r) => r.rolname).join(', ')}`);
      } finally {
        await client.end();
      }
    }
    for (const role of roles.reverse()) await admin.query(`drop role if exists ${role}`);
  } finally {
    await admin.end();
  }
});

let db: TestDatabase;
const tenantRole: Record<string, string> = {};
let tableCount = 0;

async function createRole(base: string, options = 'nologin nosuperuser nobypassrls'): Promise<string> {
  const role = `${base}_${SUFFIX}`;
  await createRoleAsMember(db.pool, role, options);
  createdRoles.push(role);
  return role;
}

/** A fresh application table with one row per tenant acme, bob and (not a pgferry tenant) zed. */
async function appTable(
  target: TestDatabase = db,
  columns = 'tenant_id text not null, sku text not null, name text',
): Promise<string> {
  const table = `app2.t${++tableCount}`;
  await target.pool.query(`create schema if not exists app2`);
  await target.pool.query(`create table ${table} (${columns})`);
  await target.pool.query(`insert into ${table} values ('acme', 'A1', 'a'), ('bob', 'B1', 'b'), ('zed', 'Z1', 'z')`);
  return table;
}

async function protectError(
  table: string,
  options: ProtectOptions = {},
  target: TestDatabase = db,
): Promise<PgferryError> {
  const error = await protectTable(target.pool, table, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PgferryError);
  return error as PgferryError;
}

/** What a role sees of a table, and whether it can write a row for a given tenant. */
async function seenBy(role: string, table: string, target: TestDatabase = db): Promise<string[]> {
  return target.withClient(async (c) => {
    const { rows } = await c.query(`select tenant_id from ${table} order by 1`);
    return rows.map((r) => r.tenant_id as string);
  }, role);
}

async function canInsert(role: string, table: string, tenant: string, target: TestDatabase = db): Promise<boolean> {
  return target.withClient(async (c) => {
    await c.query('begin');
    try {
      await c.query(`insert into ${table} (tenant_id, sku) values ($1, 'NEW')`, [tenant]);
      return true;
    } catch {
      return false;
    } finally {
      await c.query('rollback');
    }
  }, role);
}

async function rlsEnabled(table: string, target: TestDatabase = db): Promise<boolean> {
  const { rows } = await target.pool.query(`select relrowsecurity from pg_class where oid = $1::regclass`, [table]);
  return rows[0].relrowsecurity;
}

async function policies(table: string, target: TestDatabase = db) {
  const { rows } = await target.pool.query(
    `select polname::text, polpermissive, polcmd::text,
            array(select coalesce(r.rolname::text, 'public') from unnest(polroles) o left join pg_roles r on r.oid = o order by 1) as roles,
            pg_get_expr(polqual, polrelid) as qual, pg_get_expr(polwithcheck, polrelid) as with_check
     from pg_policy where polrelid = $1::regclass order by polname`,
    [table],
  );
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase();
  databases.push(db.name);
  for (const slug of ['acme', 'bob']) tenantRole[slug] = (await addTenant(db.pool, slug)).roleName;
});

describe('protect refuses to lock the application out', () => {
  it('names an application role that would lose access, with SQLSTATE 55000, and changes nothing', async () => {
    const appRw = await createRole('app_rw');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to ${appRw}; grant select, insert on ${table} to ${appRw}`);

    const error = await protectError(table);
    expect(error.message).toContain(appRw);
    expect((error.cause as pg.DatabaseError).code).toBe('55000');
    expect(error.hint ?? '').toMatch(/keep-role|lock-out/);

    expect(await rlsEnabled(table)).toBe(false);
    expect(await policies(table)).toEqual([]);
    const { rows } = await db.pool.query(
      `select count(*)::int as n from ferry.protected_tables where table_name = $1`,
      [table.split('.')[1]],
    );
    expect(rows[0].n).toBe(0);
    expect(await seenBy(appRw, table)).toEqual(['acme', 'bob', 'zed']);
  });

  it('with keepRoles the role (and roles inheriting it) keep every row; tenants stay confined', async () => {
    const appRw = await createRole('app_rw2');
    const appUser = await createRole('app_user2', 'nologin inherit');
    await db.pool.query(`grant ${appRw} to ${appUser}`);
    const table = await appTable();
    await db.pool.query(
      `grant usage on schema app2 to ${appRw}; grant select, insert, update, delete on ${table} to ${appRw}`,
    );

    // A member of a granted role is covered by naming the granted role.
    const error = await protectError(table);
    expect(error.message).toContain(appRw);
    expect(error.message).not.toContain(appUser);

    const row = await protectTable(db.pool, table, { keepRoles: [appRw] });
    expect(row.passthrough_roles).toEqual([appRw]);
    expect(await rlsEnabled(table)).toBe(true);
    expect(await seenBy(appRw, table)).toEqual(['acme', 'bob', 'zed']);
    expect(await seenBy(appUser, table)).toEqual(['acme', 'bob', 'zed']);
    expect(await canInsert(appRw, table, 'bob')).toBe(true);
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
    expect(await seenBy(tenantRole.bob, table)).toEqual(['bob']);
    expect(await canInsert(tenantRole.acme, table, 'bob')).toBe(false);
    expect(await canInsert(tenantRole.acme, table, 'acme')).toBe(true);
  });

  it('with lockOut the role loses access, as it was told', async () => {
    const appRw = await createRole('app_rw3');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to ${appRw}; grant select, insert on ${table} to ${appRw}`);
    await protectTable(db.pool, table, { lockOut: true });
    expect(await seenBy(appRw, table)).toEqual([]);
    expect(await canInsert(appRw, table, 'acme')).toBe(false);
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
  });

  it('reports grants to PUBLIC as PUBLIC, and lockOut then takes them away', async () => {
    const nobody = await createRole('nobody');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to public; grant select on ${table} to public`);
    const error = await protectError(table);
    expect(error.message).toMatch(/\bPUBLIC\b/);
    expect(await seenBy(nobody, table)).toEqual(['acme', 'bob', 'zed']);
    await protectTable(db.pool, table, { lockOut: true });
    expect(await seenBy(nobody, table)).toEqual([]);
    expect(await seenBy(tenantRole.bob, table)).toEqual(['bob']);
    await db.pool.query(`revoke usage on schema app2 from public`);
  });

  it('keepRoles PUBLIC keeps PUBLIC’s access (the refusal suggests --keep-role) and still confines tenants', async () => {
    const nobody = await createRole('nobody2');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to ${nobody}; grant select on ${table} to public`);
    const error = await protectTable(db.pool, table, { keepRoles: ['PUBLIC'] }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBeUndefined();
    expect(await seenBy(nobody, table)).toEqual(['acme', 'bob', 'zed']);
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
  });

  it('names a role that holds only column privileges', async () => {
    const appCol = await createRole('app_col');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to ${appCol}; grant select (sku, name) on ${table} to ${appCol}`);
    const before = await db.withClient(
      async (c) => (await c.query(`select sku from ${table} order by 1`)).rows.length,
      appCol,
    );
    expect(before).toBe(3);
    const error = await protectTable(db.pool, table).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const after = await db.withClient(
      async (c) => (await c.query(`select sku from ${table} order by 1`)).rows.length,
      appCol,
    );
    // Either refused naming the role, or the role kept its rows; never a silent lock-out.
    expect({ refusedNaming: error?.message.includes(appCol) ?? false, rowsAfter: after }).toEqual({
      refusedNaming: true,
      rowsAfter: 3,
    });
  });

  it('the owner keeps access (RLS is enabled, not forced)', async () => {
    const owner = await createRole('app_owner');
    const table = await appTable();
    // A new owner needs CREATE on the schema (unless the one who changes it is a superuser).
    await db.pool.query(`grant usage, create on schema app2 to ${owner}; alter table ${table} owner to ${owner}`);
    await protectTable(db.pool, table);
    expect(await seenBy(owner, table)).toEqual(['acme', 'bob', 'zed']);
    const { rows } = await db.pool.query(`select relforcerowsecurity from pg_class where oid = $1::regclass`, [table]);
    expect(rows[0].relforcerowsecurity).toBe(false);
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
  });

  it('refuses an unknown role in keepRoles, changing nothing', async () => {
    const table = await appTable();
    const error = await protectError(table, { keepRoles: [`no_such_role_${SUFFIX}`] });
    expect(error.message).toMatch(/does not exist/);
    expect(await rlsEnabled(table)).toBe(false);
    expect(await policies(table)).toEqual([]);
  });

  it('refuses what is not a table, or has no tenant column, with a clear error', async () => {
    const table = await appTable();
    await db.pool.query(`create view app2.v as select * from ${table}`);
    expect((await protectError('app2.v')).message).toMatch(/not a table/);
    expect((await protectError('app2.no_such_table')).message).toMatch(/does not exist/);
    expect((await protectError(table, { column: 'customer' })).message).toMatch(/no column customer/);
    expect((await protectError(`${table}; drop table ${table}`)).message).toMatch(/does not exist|invalid/);
    expect(await rlsEnabled(table)).toBe(false);
  });
});

describe('protect keeps every tenant confined', () => {
  it('an application policy TO public USING (true) does not widen a tenant role', async () => {
    const table = await appTable();
    await db.pool.query(`alter table ${table} enable row level security`);
    await db.pool.query(`create policy app_all on ${table} for all to public using (true) with check (true)`);
    await protectTable(db.pool, table);
    const names = (await policies(table)).map((p) => p.polname);
    expect(names).toContain('app_all');
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
    expect(await canInsert(tenantRole.acme, table, 'zed')).toBe(false);
  });

  it('keeping a tenant role, or the tenant group, does not widen the tenants', async () => {
    const table = await appTable();
    const { rows } = await db.pool.query(`select ferry.tenant_group() as g`);
    await protectTable(db.pool, table, { keepRoles: [tenantRole.acme, rows[0].g] });
    expect(await seenBy(tenantRole.acme, table)).toEqual(['acme']);
    expect(await seenBy(tenantRole.bob, table)).toEqual(['bob']);
    expect(await canInsert(tenantRole.acme, table, 'bob')).toBe(false);
  });

  it('re-protecting is idempotent and keeps earlier pass-through roles', async () => {
    const appRw = await createRole('app_rw4');
    const table = await appTable();
    await db.pool.query(`grant usage on schema app2 to ${appRw}; grant select on ${table} to ${appRw}`);
    await protectTable(db.pool, table, { keepRoles: [appRw] });
    const first = await policies(table);
    const again = await protectTable(db.pool, table);
    expect(again.passthrough_roles).toEqual([appRw]);
    await protectTable(db.pool, table, { keepRoles: [appRw] });
    expect(await policies(table)).toEqual(first);
    expect(await seenBy(appRw, table)).toEqual(['acme', 'bob', 'zed']);
    expect(await seenBy(tenantRole.bob, table)).toEqual(['bob']);
  });

  it('a tenant added after protect gets its policies on every protected table', async () => {
    const table = await appTable();
    await db.pool.query(`insert into ${table} values ('late', 'L1', 'l')`);
    await protectTable(db.pool, table);
    const late = await addTenant(db.pool, 'late');
    expect(await seenBy(late.roleName, table)).toEqual(['late']);
    expect(await canInsert(late.roleName, table, 'acme')).toBe(false);
    const { rows } = await db.pool.query(
      `select p.schema_name, p.table_name,
              (select count(*)::int from pg_policy pol
               where pol.polrelid = format('%I.%I', p.schema_name, p.table_name)::regclass
                 and pol.polroles = array[$1::regrole]::oid[]) as n,
              (select count(*)::int from pg_policy pol
               where pol.polrelid = format('%I.%I', p.schema_name, p.table_name)::regclass
                 and pol.polroles = array[$1::regrole]::oid[] and not pol.polpermissive) as restrictive
       from ferry.protected_tables p`,
      [late.roleName],
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows)
      expect({ table: `${r.schema_name}.${r.table_name}`, n: r.n, restrictive: r.restrictive }).toEqual({
        table: `${r.schema_name}.${r.table_name}`,
        n: 2,
        restrictive: 1,
      });
  });

  it('quotes hostile table and column names', async () => {
    await db.pool.query(`create schema if not exists "we""ird; schema"`);
    const table = `"we""ird; schema"."t'; drop table app2.t1; --"`;
    await db.pool.query(`create table ${table} ("tenant id" text not null, sku text)`);
    await db.pool.query(`insert into ${table} values ('acme', 'A1'), ('bob', 'B1')`);
    await protectTable(db.pool, table, { column: 'tenant id' });
    const acme = await db.withClient(
      async (c) => (await c.query(`select "tenant id" as t from ${table}`)).rows,
      tenantRole.acme,
    );
    expect(acme).toEqual([{ t: 'acme' }]);
    const { rows } = await db.pool.query(`select to_regclass('app2.t1') is not null as ok`);
    expect(rows[0].ok).toBe(true);
  });
});

describe('policy names cannot collide between tenants (a database of its own)', () => {
  let other: TestDatabase;
  const roles: Record<string, string> = {};

  beforeAll(async () => {
    other = await createTestDatabase();
    databases.push(other.name);
    // Added before any table is protected: add_tenant has no policy to create yet.
    for (const slug of ['pn', 'pn_only', 'passthrough']) roles[slug] = (await addTenant(other.pool, slug)).roleName;
  });

  it("tenant pn keeps its restrictive policy next to tenant pn_only's policies", async () => {
    const table = await appTable(other);
    await other.pool.query(`insert into ${table} values ('pn', 'P1', 'p'), ('pn_only', 'Q1', 'q')`);
    await other.pool.query(`alter table ${table} enable row level security`);
    await other.pool.query(`create policy app_all on ${table} for all to public using (true) with check (true)`);
    await protectTable(other.pool, table);
    // The impact first: what each tenant role can see and write.
    expect({
      pn_sees: await seenBy(roles.pn, table, other),
      pn_only_sees: await seenBy(roles.pn_only, table, other),
      pn_can_write_for_bob: await canInsert(roles.pn, table, 'bob', other),
    }).toEqual({ pn_sees: ['pn'], pn_only_sees: ['pn_only'], pn_can_write_for_bob: false });
    const restrictive = (await policies(table, other)).filter((p) => !p.polpermissive).map((p) => p.roles);
    expect(restrictive).toContainEqual([roles.pn]);
    expect(restrictive).toContainEqual([roles.pn_only]);
  });

  it('a tenant named like another plus _only can be added after protect', async () => {
    await appTable(other).then((t) => protectTable(other.pool, t));
    await addTenant(other.pool, 'later');
    const error = await addTenant(other.pool, 'later_only').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBeUndefined();
  });

  it("a tenant named passthrough does not take the application's pass-through policy", async () => {
    const appRw = `app_rw5_${SUFFIX}`;
    await createRoleAsMember(other.pool, appRw, 'nologin');
    createdRoles.push(appRw);
    const table = await appTable(other);
    await other.pool.query(`grant usage on schema app2 to ${appRw}; grant select on ${table} to ${appRw}`);
    await protectTable(other.pool, table, { keepRoles: [appRw] });
    expect(await seenBy(appRw, table, other)).toEqual(['acme', 'bob', 'zed']);
    expect(await seenBy(roles.passthrough, table, other)).toEqual([]);
  });
});

describe('an integer tenant column (a database of its own: every tenant key must fit the column)', () => {
  let numeric: TestDatabase;
  const roles: Record<string, string> = {};
  let table: string;

  beforeAll(async () => {
    numeric = await createTestDatabase();
    databases.push(numeric.name);
    for (const [slug, key] of [
      ['t42', '42'],
      ['t43', '43'],
    ])
      roles[slug] = (await addTenant(numeric.pool, slug, key)).roleName;
    await numeric.pool.query(
      `create schema app2; create table app2.orders (tenant_id integer not null, ref text not null)`,
    );
    await numeric.pool.query(`insert into app2.orders values (42, 'a'), (43, 'b'), (44, 'c')`);
    table = 'app2.orders';
    await protectTable(numeric.pool, table);
  });

  it('confines each tenant to the rows whose integer equals its key', async () => {
    const seen = async (role: string) =>
      numeric.withClient(
        async (c) => (await c.query(`select tenant_id from ${table} order by 1`)).rows.map((r) => r.tenant_id),
        role,
      );
    expect(await seen(roles.t42)).toEqual([42]);
    expect(await seen(roles.t43)).toEqual([43]);
  });

  it("refuses a new tenant whose key is, as the column's type, another tenant's key ('042' = 42)", async () => {
    const error = await addTenant(numeric.pool, 't042', '042').then(
      () => undefined,
      (e: unknown) => e,
    );
    const { rows } = await numeric.pool.query(`select role_name from ferry.tenants where slug = 't042'`);
    const seen = rows[0]
      ? await numeric.withClient(
          async (c) => (await c.query(`select tenant_id from ${table} order by 1`)).rows.map((r) => r.tenant_id),
          rows[0].role_name,
        )
      : [];
    expect({ refused: error instanceof PgferryError, t042_sees: seen }).toEqual({ refused: true, t042_sees: [] });
  });
});
