// `pgferry uninstall`: lists, then removes, everything pgferry made — its policies, the row-level
// security it turned on, the privileges of its roles, its schemas, this instance's roles —
// and leaves the application's tables and rows as they are. Roles belong to the server:
// another database's pgferry keeps its own.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';

import { dropDatabase } from '../src/db/database.js';
import { addTenant, load, migrate, planUninstall, protectTable, uninstall, type UninstallItem } from '../src/index.js';
import { ensureQueueSchema } from '../src/jobs/queue.js';
import { databaseUrl, TEMPLATE_DATABASE } from './global-setup.js';
import { PRODUCTS_DDL, productsMapping, tempDir, writeFile } from './helpers/fixtures.js';
import { leftoverTenantRoles } from './helpers/leftover-roles.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const adminUrl = inject('adminUrl');
const dir = tempDir();
const mapping = productsMapping(dir);
const csv = (name: string, rows: string) => writeFile(dir, name, `sku,name,price\n${rows}`);

/** A database with app.products protected, tenants acme and bob, one load each. */
async function installed(db: TestDatabase | { pool: pg.Pool }): Promise<void> {
  await db.pool.query('create schema if not exists app');
  await db.pool.query(PRODUCTS_DDL);
  await addTenant(db.pool, 'acme');
  await addTenant(db.pool, 'bob');
  await protectTable(db.pool, 'app.products');
  expect(
    (await load(db.pool, { file: csv('a.csv', 'A-1,Anvil,10\nA-2,Rope,2\n'), tenant: 'acme', mapping })).status,
  ).toBe('succeeded');
  expect((await load(db.pool, { file: csv('b.csv', 'B-1,Bell,3\n'), tenant: 'bob', mapping })).status).toBe(
    'succeeded',
  );
}

async function instanceOf(pool: pg.Pool): Promise<string> {
  return (await pool.query<{ instance_id: string }>('select instance_id from ferry.settings')).rows[0].instance_id;
}

/** Roles of the server named pgf_<instance>_… */
async function rolesOf(pool: pg.Pool | pg.ClientBase, instance: string): Promise<string[]> {
  const { rows } = await pool.query<{ rolname: string }>(
    'select rolname from pg_roles where left(rolname, length($1)) = $1 order by 1',
    [`pgf_${instance}_`],
  );
  return rows.map((r) => r.rolname);
}

async function asAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A database with tenants, made as the test databases are; returns its name and instance. */
async function databaseWithTenants(): Promise<{ name: string; instance: string }> {
  const name = `pgferry_roles_${randomBytes(4).toString('hex')}`;
  await asAdmin((c) => c.query(`create database ${name} template ${TEMPLATE_DATABASE}`));
  const pool = new pg.Pool({ connectionString: databaseUrl(adminUrl, name), max: 2 });
  try {
    const instance = randomBytes(3).toString('hex');
    await pool.query('update ferry.settings set instance_id = $1', [instance]);
    await installed({ pool });
    return { name, instance };
  } finally {
    await pool.end();
  }
}

async function schemas(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ nspname: string }>(
    `select nspname from pg_namespace where nspname not like 'pg\\_%' and nspname <> 'information_schema' order by 1`,
  );
  return rows.map((r) => r.nspname);
}

const objects = (items: UninstallItem[], kind: UninstallItem['kind']) =>
  items.filter((i) => i.kind === kind && i.statement !== null).map((i) => i.object);

describe('pgferry uninstall', () => {
  it("lists what it would remove, removes it all with --yes, and leaves the application's rows", async () => {
    const db = await createTestDatabase();
    await installed(db);
    const instance = await instanceOf(db.pool);
    const rolesBefore = await rolesOf(db.pool, instance);
    expect(rolesBefore).toEqual([`pgf_${instance}__tenants`, `pgf_${instance}_acme`, `pgf_${instance}_bob`]);

    const plan = await planUninstall(db.pool);
    expect(plan).toMatchObject({ installed: true, instance, blockers: [] });
    expect(objects(plan.items, 'policy')).toEqual([
      'pgferry_only_acme on app.products',
      'pgferry_only_bob on app.products',
      'pgferry_tenant_acme on app.products',
      'pgferry_tenant_bob on app.products',
    ]);
    expect(plan.items.find((i) => i.kind === 'row security')).toMatchObject({
      object: 'app.products',
      detail: 'disabled: pgferry enabled it',
    });
    expect(objects(plan.items, 'privilege')).toEqual(['app', 'app', 'app.products', 'app.products']);
    expect(plan.items.find((i) => i.kind === 'privilege' && i.object === 'app.products')?.detail).toBe(
      `pgf_${instance}_acme: DELETE, INSERT, SELECT, UPDATE`,
    );
    expect(objects(plan.items, 'schema')).toEqual(['ferry_t_acme', 'ferry_t_bob', 'ferry_util', 'ferry']);
    expect(plan.items.find((i) => i.object === 'ferry')?.detail).toMatch(
      /the catalog of 2 tenants, 1 protected table, 1 mapping, 2 loads/,
    );
    // the group last: it is the tenant roles' group
    expect(objects(plan.items, 'role')).toEqual([
      `pgf_${instance}_acme`,
      `pgf_${instance}_bob`,
      `pgf_${instance}__tenants`,
    ]);
    // listing changed nothing
    expect(await rolesOf(db.pool, instance)).toEqual(rolesBefore);

    const result = await uninstall(db.pool);
    expect(result.removed.map((i) => i.statement)).toEqual(plan.items.map((i) => i.statement).filter(Boolean));
    expect(await rolesOf(db.pool, instance)).toEqual([]);
    expect(await schemas(db.pool)).toEqual(['app', 'public']);
    const { rows: policies } = await db.pool.query(`select polname from pg_policy`);
    expect(policies).toEqual([]);
    const { rows: table } = await db.pool.query(
      `select relrowsecurity, relforcerowsecurity,
              (select count(*)::int from aclexplode(relacl) a where a.grantee <> relowner) as grants
       from pg_class where oid = 'app.products'::regclass`,
    );
    expect(table[0]).toEqual({ relrowsecurity: false, relforcerowsecurity: false, grants: 0 });
    // the rows, readable by the table's owner as before
    const { rows } = await db.pool.query(`select tenant_id, sku, price::text from app.products order by 1, 2`);
    expect(rows).toEqual([
      { tenant_id: 'acme', sku: 'A-1', price: '10.00' },
      { tenant_id: 'acme', sku: 'A-2', price: '2.00' },
      { tenant_id: 'bob', sku: 'B-1', price: '3.00' },
    ]);

    // Again: nothing is installed, nothing to do (and nothing is installed by asking).
    expect(await planUninstall(db.pool)).toEqual({ installed: false, items: [], blockers: [] });
    expect(await uninstall(db.pool)).toEqual({ removed: [], kept: [] });
    expect(await schemas(db.pool)).toEqual(['app', 'public']);
  });

  it("removes only this database's roles: another database's pgferry on the same server keeps working", async () => {
    const one = await createTestDatabase();
    const other = await createTestDatabase();
    await installed(one);
    await installed(other);
    const otherRoles = await rolesOf(other.pool, await instanceOf(other.pool));
    expect(otherRoles).toHaveLength(3);

    await uninstall(one.pool);
    expect(await rolesOf(other.pool, await instanceOf(other.pool))).toEqual(otherRoles);
    const again = await load(other.pool, { file: csv('b2.csv', 'B-2,Bolt,4\n'), tenant: 'bob', mapping });
    expect(again.counts).toMatchObject({ inserted: 1 });
    await other.withClient(async (client) => {
      await client.query('begin');
      await client.query(`set local role ${client.escapeIdentifier(otherRoles[2])}`);
      const { rows } = await client.query('select sku from app.products order by 1');
      expect(rows.map((r) => r.sku)).toEqual(['B-1', 'B-2']);
      await client.query('rollback');
    });
  });

  it('puts row-level security back as protect found it, and keeps it where the application has policies', async () => {
    const db = await createTestDatabase();
    await db.pool.query(`create schema app;
      create table app.had_rls (tenant_id text, v int); alter table app.had_rls enable row level security;
      create table app.own_policy (tenant_id text, v int);
      create table app.unrecorded (tenant_id text, v int);
      insert into app.had_rls values ('acme', 1); insert into app.own_policy values ('acme', 2)`);
    await addTenant(db.pool, 'acme');
    for (const table of ['app.had_rls', 'app.own_policy', 'app.unrecorded']) await protectTable(db.pool, table);
    // protected again: what it was before the first time is kept
    await protectTable(db.pool, 'app.had_rls');
    // the application adds a policy of its own after protect
    await db.pool.query(`create policy app_reads on app.own_policy for select to public using (true)`);
    // as a table protected before pgferry recorded it
    await db.pool.query(`update ferry.protected_tables set rls_before = null where table_name = 'unrecorded'`);

    const plan = await planUninstall(db.pool);
    const rls = Object.fromEntries(
      plan.items.filter((i) => i.kind === 'row security').map((i) => [i.object, [i.detail, i.statement !== null]]),
    );
    expect(rls).toEqual({
      'app.had_rls': ['stays enabled: it was before pgferry protected the table', false],
      'app.own_policy': ['stays enabled: the table has policies of its own (app_reads)', false],
      'app.unrecorded': [
        'disabled: no policy is left on it (pgferry did not record whether it was enabled before)',
        true,
      ],
    });
    await uninstall(db.pool);
    const { rows } = await db.pool.query(
      `select relname, relrowsecurity from pg_class where relnamespace = 'app'::regnamespace and relkind = 'r' order by 1`,
    );
    expect(rows).toEqual([
      { relname: 'had_rls', relrowsecurity: true },
      { relname: 'own_policy', relrowsecurity: true },
      { relname: 'unrecorded', relrowsecurity: false },
    ]);
    const { rows: policies } = await db.pool.query(`select polname from pg_policy`);
    expect(policies).toEqual([{ polname: 'app_reads' }]);
  });

  it("drops graphile-worker's schema when only pgferry's jobs used it", async () => {
    const db = await createTestDatabase();
    await ensureQueueSchema(db.pool);
    await db.pool.query(`select graphile_worker.add_job('pgferry_load', '{"loadId": 1}')`);
    expect(objects((await planUninstall(db.pool)).items, 'schema')).toContain('graphile_worker');
    await db.pool.query(`select graphile_worker.add_job('send_email', '{}')`);
    const plan = await planUninstall(db.pool);
    expect(objects(plan.items, 'schema')).not.toContain('graphile_worker');
    expect(plan.items.find((i) => i.kind === 'jobs')?.detail).toMatch(/tasks other than pgferry's: send_email/);
    await uninstall(db.pool);
    const { rows } = await db.pool.query(
      `select t.identifier from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id`,
    );
    expect(rows).toEqual([{ identifier: 'send_email' }]);
  });

  it('refuses, removing nothing, while a load runs or an application object depends on pgferry', async () => {
    const db = await createTestDatabase();
    await installed(db);
    const instance = await instanceOf(db.pool);
    await db.pool.query(`create view app.load_report as select id, status from ferry.loads`);
    const error = await uninstall(db.pool).catch((e: Error) => e);
    expect((error as Error).message).toMatch(
      /^uninstall refused: view app\.load_report depends on table ferry\.loads$/,
    );
    expect(await rolesOf(db.pool, instance)).toHaveLength(3);
    await db.pool.query('drop view app.load_report');

    // a load claimed by a live process
    const { rows } = await db.pool.query<{ id: number }>('select min(id)::int as id from ferry.loads');
    const claim = new pg.Client({ connectionString: db.url });
    await claim.connect();
    try {
      await claim.query('select ferry.claim_load($1)', [rows[0].id]);
      const refused = await uninstall(db.pool).catch((e: Error) => e);
      expect((refused as Error).message).toBe(
        `uninstall refused: load ${rows[0].id} is running (stop it with pgferry cancel ${rows[0].id}, or let it end)`,
      );
    } finally {
      await claim.end();
    }
    // a pgferry worker running on the database (its liveness lock)
    const worker = new pg.Client({ connectionString: db.url });
    await worker.connect();
    try {
      await worker.query('select pg_advisory_lock(ferry.worker_lock_class(), hashtext($1))', ['a-worker']);
      expect((await planUninstall(db.pool)).blockers).toEqual([
        'a pgferry worker is running on this database (stop it first)',
      ]);
    } finally {
      await worker.end();
    }
    expect(await schemas(db.pool)).toContain('ferry');
    await uninstall(db.pool);
    expect(await rolesOf(db.pool, instance)).toEqual([]);
  });

  it('keeps the roles a database cloned from this one still uses', async () => {
    const { name, instance } = await databaseWithTenants();
    const clone = `${name}_clone`;
    try {
      await asAdmin((c) => c.query(`create database ${clone} template ${name}`));
      const pool = new pg.Pool({ connectionString: databaseUrl(adminUrl, name), max: 2 });
      try {
        const plan = await planUninstall(pool);
        expect(plan.items.filter((i) => i.kind === 'role').map((i) => [i.object, i.statement])).toEqual([
          [`pgf_${instance}_acme`, null],
          [`pgf_${instance}_bob`, null],
          [`pgf_${instance}__tenants`, null],
        ]);
        expect(plan.items.find((i) => i.kind === 'role')?.detail).toBe(
          `kept: database ${clone} uses it too (cloned from this one?)`,
        );
        const result = await uninstall(pool);
        expect(result.kept.filter((i) => i.kind === 'role')).toHaveLength(3);
        expect(await schemas(pool)).toEqual(['app', 'public']);
      } finally {
        await pool.end();
      }
      // the clone still works as its tenants' roles
      const cloned = new pg.Pool({ connectionString: databaseUrl(adminUrl, clone), max: 4 });
      try {
        const again = await load(cloned, { file: csv('c.csv', 'C-1,Cup,1\n'), tenant: 'acme', mapping });
        expect(again.counts).toMatchObject({ inserted: 1 });
      } finally {
        await cloned.end();
      }
    } finally {
      await dropDatabase(adminUrl, name);
      await dropDatabase(adminUrl, clone);
    }
    expect(await asAdmin((c) => rolesOf(c, instance))).toEqual([]);
  });

  it('lists through the CLI, says to re-run with --yes, then removes and prints a summary', async () => {
    const db = await createTestDatabase();
    await installed(db);
    const env = { DATABASE_URL: db.url };
    const listed = await runCli(['uninstall'], { env });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/policy\s+pgferry_tenant_acme on app\.products/);
    expect(listed.stdout).toMatch(/schema\s+ferry_t_acme\s+2 functions, of tenant acme/);
    expect(listed.stdout).toMatch(/Run again with --yes to remove it all\./);
    const json = await runCli(['uninstall', '--json'], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ installed: true, blockers: [] });
    expect(await schemas(db.pool)).toContain('ferry');

    const removed = await runCli(['uninstall', '--yes'], { env });
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(
      /^pgferry uninstalled \(instance \w+\): removed 4 schemas, 3 roles, 4 policies, 4 grants, row security off on 1 table$/m,
    );
    expect(await schemas(db.pool)).toEqual(['app', 'public']);
    const nothing = await runCli(['uninstall', '--yes'], { env });
    expect(nothing.stdout).toMatch(/pgferry is not installed in this database: nothing to remove/);
  });
});

describe('as a LOGIN CREATEROLE CREATEDB role (a superuser only creates that role)', () => {
  const suffix = randomBytes(4).toString('hex');
  const role = `pgferry_uninstaller_${suffix}`;
  const database = `pgferry_uninstall_${suffix}`;
  const password = randomBytes(12).toString('hex');
  let pool: pg.Pool | undefined;
  // The suite's own role cannot drop a database or a role another role made: a superuser can.
  const superuserUrl = inject('superuserUrl');

  async function asSuperuser(sql: string): Promise<void> {
    const client = new pg.Client({ connectionString: superuserUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  afterAll(async () => {
    await pool?.end();
    await dropDatabase(superuserUrl, database);
    await asSuperuser(`drop role if exists ${role}`);
  });

  it('installs, loads and uninstalls, leaving no role of its instance', async () => {
    await asSuperuser(`create role ${role} login createrole createdb password '${password}'`);
    // The role makes its own database, as it would on a managed server.
    const url = new URL(databaseUrl(adminUrl, 'postgres'));
    url.username = role;
    url.password = password;
    const creator = new pg.Client({ connectionString: url.toString() });
    await creator.connect();
    await creator.query(`create database ${database}`).finally(() => creator.end());
    url.pathname = `/${database}`;
    pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
    const { rows: me } = await pool.query(`select rolsuper from pg_roles where rolname = current_user`);
    expect(me[0].rolsuper).toBe(false);
    const client = await pool.connect();
    await migrate(client).finally(() => client.release());
    await installed({ pool });
    const instance = await instanceOf(pool);
    expect(await rolesOf(pool, instance)).toHaveLength(3);

    await uninstall(pool);
    expect(await rolesOf(pool, instance)).toEqual([]);
    expect(await schemas(pool)).toEqual(['app', 'public']);
    const { rows } = await pool.query('select count(*)::int as n from app.products');
    expect(rows[0].n).toBe(3);
  });
});

describe("a test database's roles (the suite leaves none on the server)", () => {
  it("dropDatabase drops the roles of the instance it finds in the database's own ferry.settings", async () => {
    const { name, instance } = await databaseWithTenants();
    await dropDatabase(adminUrl, name);
    expect(await asAdmin((c) => rolesOf(c, instance))).toEqual([]);
  });

  it('a database dropped without its roles shows in leftoverTenantRoles (the check for the teardown)', async () => {
    const { name, instance } = await databaseWithTenants();
    await asAdmin((c) => c.query(`drop database ${name} with (force)`));
    const leftover = await asAdmin((c) => leftoverTenantRoles(c));
    expect(leftover.filter((r) => r.startsWith(`pgf_${instance}_`))).toEqual([
      `pgf_${instance}__tenants`,
      `pgf_${instance}_acme`,
      `pgf_${instance}_bob`,
    ]);
    // the database is gone: the instance must be given
    await dropDatabase(adminUrl, name, instance);
    expect((await asAdmin((c) => leftoverTenantRoles(c))).filter((r) => r.startsWith(`pgf_${instance}_`))).toEqual([]);
  });
});
