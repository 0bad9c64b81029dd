// Second security review of tenant isolation (after "Close the isolation holes found by the
// security tests"). Each test asserts the SECURE behaviour: a hole shows up as a failing test.
//
// Threat model, as in security.isolation.test.ts: a tenant controls its mapping files (their
// SELECT and their check expressions) and its CSV files; a login that holds a tenant role (a
// DBA of that tenant, a non-superuser loader) may act as that tenant and nothing more. Tenant
// bob's rows carry the marker BOBSECRET: it must never reach another tenant, and bob's rows
// must never change. The loader is the superuser of the test server.
//
// Every attacking tenant is new (ev1, ev2, …): several attacks leave objects behind in their
// tenant's schema on purpose.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';

import { load } from '../src/load/load.js';
import type { LoadResult } from '../src/load/types.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { databaseUrl } from './global-setup.js';
import { productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { createRoleAsMember } from './helpers/test-role.js';

let db: TestDatabase;
/** A database of its own for tests that would disturb every tenant of `db`. */
let db2: TestDatabase;
let dir: string;
let superuser: string;

const SECRET = 'BOBSECRET';
const BOB_ROWS = [
  { tenant_id: 'bob', sku: 'B1', name: `${SECRET}-one`, price: '1.00', stock_quantity: 5 },
  { tenant_id: 'bob', sku: 'B2', name: `${SECRET}-two`, price: '2.00', stock_quantity: 7 },
];
const CSV = 'sku,name,price\nN1,Nail,0.10\nN2,Nut,0.20\n';
const HEADER = '-- target: app.products\n-- key: sku\n';
const HONEST = `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`;

async function reseedBob(pool: pg.Pool = db.pool): Promise<void> {
  await pool.query(`delete from app.products where tenant_id = 'bob'`);
  for (const r of BOB_ROWS) {
    await pool.query(
      'insert into app.products (tenant_id, sku, name, price, stock_quantity) values ($1, $2, $3, $4, $5)',
      [r.tenant_id, r.sku, r.name, r.price, r.stock_quantity],
    );
  }
}

async function rowsOf(tenant: string, pool: pg.Pool = db.pool) {
  const { rows } = await pool.query(
    `select tenant_id, sku, name, price::text as price, stock_quantity from app.products where tenant_id = $1 order by sku`,
    [tenant],
  );
  return rows;
}

/** bob's rows exactly as seeded; nothing of bob's anywhere else; no tenant role gained power. */
async function expectBobUntouched(pool: pg.Pool = db.pool): Promise<void> {
  expect(await rowsOf('bob', pool)).toEqual(BOB_ROWS);
  const { rows } = await pool.query(
    `select tenant_id, sku, name from app.products where tenant_id <> 'bob' and to_jsonb(products)::text like '%' || $1 || '%'`,
    [SECRET],
  );
  expect(rows).toEqual([]);
  const { rows: powerful } = await pool.query(
    `select rolname from pg_roles
     where rolname like 'pgf\\_' || (select instance_id from ferry.settings) || '\\_%'
       and (rolsuper or rolbypassrls or rolcanlogin or rolcreaterole)`,
  );
  expect(powerful).toEqual([]);
}

interface Attempt {
  result?: LoadResult;
  error?: unknown;
  text: string;
}

/** Loads csv for tenant through a mapping with the given text; never throws. */
async function attempt(
  tenant: string,
  name: string,
  mappingText: string,
  csv = CSV,
  pool: pg.Pool = db.pool,
): Promise<Attempt> {
  const mapping = writeFile(dir, `${name}.sql`, mappingText);
  const file = writeFile(dir, `${name}.csv`, csv);
  try {
    const result = await load(pool, { file, tenant, mapping, force: true });
    return { result, text: JSON.stringify(result) };
  } catch (error) {
    const e = error as Error & { cause?: { detail?: string; hint?: string; message?: string } };
    return { error, text: `${e.message} ${e.cause?.message ?? ''} ${e.cause?.detail ?? ''} ${e.cause?.hint ?? ''}` };
  }
}

/** A new tenant (with policies on every protected table); returns its role. */
async function attacker(slug: string, pool: pg.Pool = db.pool): Promise<string> {
  return (await addTenant(pool, slug)).roleName;
}

/** Connects as a new ordinary login granted only `tenantRole` (e.g. a DBA of that tenant). */
async function tenantLogin(tenantRole: string) {
  const suffix = randomBytes(4).toString('hex');
  const login = `r2_probe_${suffix}`;
  const password = randomBytes(12).toString('hex');
  await createRoleAsMember(
    db.pool,
    login,
    `login password '${password}' nosuperuser nobypassrls noinherit nocreaterole nocreatedb`,
  );
  await db.pool.query(`grant ${tenantRole} to ${login}`);
  const url = new URL(db.url);
  url.username = login;
  url.password = password;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return {
    client,
    async drop() {
      await client.end();
      await db.pool.query(`drop owned by ${login}`);
      await db.pool.query(`drop role ${login}`);
    },
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  db2 = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['bob']);
  const { rows } = await db.pool.query('select current_user as su');
  superuser = rows[0].su;
  await reseedBob();
});

beforeEach(async () => {
  await reseedBob();
});

describe('a mapping is still more than one SELECT', () => {
  it("a SELECT cannot run statements through its own tenant's as_tenant()", async () => {
    // as_tenant() is owned by the tenant and EXECUTEs any text: a mapping that calls it runs
    // DDL and DML as the tenant at transform time, outside the load's undo log.
    await attacker('ev1');
    await db.pool.query(`insert into app.products (tenant_id, sku, name, price) values ('ev1', 'E1', 'kept', 1)`);
    const a = await attempt(
      'ev1',
      'ev1_as_tenant',
      `${HEADER}select s.sku as sku,
       s.name || coalesce(left(ferry_t_ev1.as_tenant($q$
         create table if not exists ferry_t_ev1.made_by_a_select (x int);
         delete from app.products where tenant_id = 'ev1' and sku = 'E1'
       $q$, true)::text, 0), '') as name,
       s.price as price
from staged s
`,
    );
    void a;
    const { rows } = await db.pool.query(`select to_regclass('ferry_t_ev1.made_by_a_select') is null as absent`);
    expect(rows[0].absent, 'DDL ran from inside a mapping').toBe(true);
    expect(
      (await rowsOf('ev1')).map((r) => r.sku),
      'a row was deleted outside the undo log',
    ).toContain('E1');
    await expectBobUntouched();
  });

  it('a check expression cannot run statements through as_tenant() either', async () => {
    await attacker('ev1c');
    const a = await attempt(
      'ev1c',
      'ev1c_check',
      `${HEADER}-- check: coalesce(left(ferry_t_ev1c.as_tenant('create table if not exists ferry_t_ev1c.made_by_a_check (x int)', true)::text, 0), '') = '' | x
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
    );
    void a;
    const { rows } = await db.pool.query(`select to_regclass('ferry_t_ev1c.made_by_a_check') is null as absent`);
    expect(rows[0].absent, 'DDL ran from inside a check expression').toBe(true);
    await expectBobUntouched();
  });
});

describe('the loader never runs code the tenant can replace', () => {
  it("a tenant that replaces its as_tenant() with a SECURITY INVOKER function does not get the loader's rights at its next compile", async () => {
    // compile_load() calls <schema>.as_tenant() as the loader without checking that it is still
    // SECURITY DEFINER and the tenant's (tenant_function() checks that only for compiled ones).
    const role = await attacker('ev2');
    const replace = `create or replace function ferry_t_ev2.as_tenant(p_sql text, p_execute boolean) returns void
  language plpgsql security invoker set search_path = public, pg_temp as $b$
  declare c refcursor;
  begin
    if current_user <> '${role}' then
      update app.products set name = name || ' pwned by ev2 as ' || current_user where tenant_id = 'bob';
    end if;
    if p_execute then execute p_sql; else open c for execute p_sql; close c; end if;
  end $b$`;
    const first = await attempt(
      'ev2',
      'ev2_replace',
      `${HEADER}select s.sku as sku,
       s.name || coalesce(left(ferry_t_ev2.as_tenant($q$${replace}$q$, true)::text, 0), '') as name,
       s.price as price
from staged s
`,
    );
    void first;
    // The tenant's next, perfectly honest load.
    const second = await attempt('ev2', 'ev2_honest', HONEST);
    void second;
    await expectBobUntouched();
    const { rows } = await db.pool.query(
      `select p.prosecdef, pg_get_userbyid(p.proowner)::text as owner
       from pg_proc p where p.oid = 'ferry_t_ev2.as_tenant(text, boolean)'::regprocedure`,
    );
    expect(rows[0]).toEqual({ prosecdef: true, owner: role });
  });

  it('a tenant that swaps the loader-owned rejects table for its own cannot fire a trigger as the loader', async () => {
    // The tenant owns its schema, and a schema's owner may drop any table in it: the mapping
    // drops rejects_<id> (the loader's) and creates its own with a TRUNCATE trigger, which
    // ferry.collect_rejects() fires as the loader.
    const role = await attacker('ev3');
    const ddl = `
create or replace function ferry_t_ev3.pwn() returns trigger language plpgsql as $f$
begin
  if current_user <> '${role}' then
    update app.products set name = name || ' pwned by ev3 as ' || current_user where tenant_id = 'bob';
  end if;
  return null;
end $f$;
do $d$
declare t text;
begin
  for t in select c.relname from pg_class c
           where c.relnamespace = 'ferry_t_ev3'::regnamespace and c.relkind = 'r'
             and c.relname ~ '^rejects_[0-9]+$' and pg_get_userbyid(c.relowner) <> current_user
  loop
    execute format('drop table ferry_t_ev3.%I', t);
    execute format('create table ferry_t_ev3.%I (line bigint, column_name text, value text, rule text not null, message text not null)', t);
    execute format('create trigger pwn before truncate on ferry_t_ev3.%I for each statement execute function ferry_t_ev3.pwn()', t);
  end loop;
end $d$`;
    const a = await attempt(
      'ev3',
      'ev3_swap_rejects',
      `${HEADER}select s.sku as sku,
       s.name || coalesce(left(ferry_t_ev3.as_tenant($q$${ddl}$q$, true)::text, 0), '') as name,
       s.price as price
from staged s
`,
    );
    void a;
    await expectBobUntouched();
  });

  it("a function of the tenant folded while compile_load() plans the mapping cannot shadow pg_catalog for the loader's own queries", async () => {
    // compile_load() does not pin its search_path, so pg_temp is searched before pg_catalog.
    // The planner evaluates an immutable function of the tenant's while as_tenant() opens the
    // cursor; it creates a temporary view named pg_type, which compile_load() then reads as the
    // loader: the view's function runs with the loader's rights. The functions belong to the
    // tenant; today anyone holding the tenant role can create them (the tenant owns its schema;
    // a mapping can, through as_tenant()). Here the superuser creates them and gives them to
    // the tenant, so that the test is about compile_load() whatever else is fixed.
    const role = await attacker('ev4');
    await db.pool.query(
      `create function ferry_t_ev4.evil() returns boolean language plpgsql as $f$
       begin
         if current_user <> '${role}' then
           update app.products set name = name || ' pwned by ev4 as ' || current_user where tenant_id = 'bob';
         end if;
         return true;
       end $f$;
       create function ferry_t_ev4.plant() returns text language plpgsql as $f$
       begin
         if to_regclass('pg_temp.pg_type') is null then
           create temp view pg_type as select * from pg_catalog.pg_type where ferry_t_ev4.evil();
         end if;
         return '';
       end $f$;
       create function ferry_t_ev4.fold() returns text language plpgsql immutable as $f$
       begin return ferry_t_ev4.plant(); end $f$;
       alter function ferry_t_ev4.evil() owner to ${role};
       alter function ferry_t_ev4.plant() owner to ${role};
       alter function ferry_t_ev4.fold() owner to ${role};`,
    );
    const a = await attempt(
      'ev4',
      'ev4_fold',
      `${HEADER}select s.sku as sku, s.name || ferry_t_ev4.fold() as name, s.price as price\nfrom staged s\n`,
    );
    void a;
    await expectBobUntouched();
  });

  it("a foreign-key check is compiled with the referenced table's schema, whatever the loader's search_path", async () => {
    // The referenced table is spliced as regclass::text, which drops the schema when it is on
    // the loader's search_path. In transform_<id>() (search_path public, pg_temp) the bare name
    // then finds a temporary table the mapping made, and bob's category passes the check.
    await db.pool.query(`
      create table app.categories (tenant_id text not null, id integer primary key, label text not null);
      create table app.items (
        tenant_id   text not null,
        sku         text not null,
        category_id integer references app.categories (id),
        primary key (tenant_id, sku)
      );
      insert into app.categories values ('bob', 7, '${SECRET} category');`);
    await protectTable(db.pool, 'app.categories');
    await protectTable(db.pool, 'app.items');
    await attacker('ev5');
    await db.pool.query(`insert into app.categories values ('ev5', 1, 'ev5 tools')`);
    const appFirst = new pg.Pool({ connectionString: db.url, max: 2, options: '-c search_path=app,public' });
    try {
      const a = await attempt(
        'ev5',
        'ev5_fk',
        `-- target: app.items
-- key: sku
select s.sku as sku,
       s.category_id || coalesce(left(ferry_t_ev5.as_tenant(
         'create temp table if not exists categories as select 7 as id', true)::text, 0), '') as category_id
from staged s
`,
        'sku,category_id\nI1,1\nI2,7\n',
        appFirst,
      );
      const { rows: compiled } = await db.pool.query(`select compiled_sql from ferry.loads where id = $1`, [
        a.result?.loadId ?? -1,
      ]);
      const { rows: items } = await db.pool.query(
        `select sku, category_id from app.items where tenant_id = 'ev5' order by sku`,
      );
      expect(
        items.filter((i) => i.category_id === 7),
        "a row of ev5 refers to bob's category",
      ).toEqual([]);
      if (compiled[0]?.compiled_sql) expect(compiled[0].compiled_sql).toContain('app.categories');
      // Without any trick: an honest load through the same loader rejects bob's category.
      const honest = await attempt(
        'ev5',
        'ev5_fk_honest',
        `-- target: app.items\n-- key: sku\nselect s.sku as sku, s.category_id as category_id\nfrom staged s\n`,
        'sku,category_id\nI3,1\nI4,7\n',
        appFirst,
      );
      expect({
        status: honest.result?.status,
        error: honest.result?.error ?? (honest.error as Error | undefined)?.message,
      }).toEqual({
        status: 'succeeded',
        error: undefined,
      });
      const { rows: rejected } = await db.pool.query(`select line, rule from ferry.rejects where load_id = $1`, [
        honest.result?.loadId,
      ]);
      expect(rejected.map((r) => [Number(r.line), r.rule])).toEqual([[3, 'foreign_key']]);
    } finally {
      await appFirst.end();
    }
  });
});

describe('roles, keys and catalogs', () => {
  it('a login holding one tenant role cannot become the tenant group, which holds the table privileges without a restrictive policy', async () => {
    // An application policy keyed on a setting, TO public (a common pattern). Tenant roles are
    // confined by their restrictive policies; the group role, which every tenant role is a
    // member of, has none.
    await db.pool.query(`
      create table app.notes (tenant_id text not null, id integer not null, body text not null, primary key (tenant_id, id));
      insert into app.notes values ('bob', 1, '${SECRET} note');
      create policy app_by_setting on app.notes for all to public
        using (tenant_id = current_setting('app.tenant_id', true));`);
    await protectTable(db.pool, 'app.notes');
    const role = await attacker('ev6');
    const { rows: g } = await db.pool.query('select ferry.tenant_group()::text as g');
    const login = await tenantLogin(role);
    try {
      let seen: string[] = [];
      try {
        await login.client.query(`set role ${g[0].g}`);
        await login.client.query(`select set_config('app.tenant_id', 'bob', false)`);
        seen = (await login.client.query(`select body from app.notes`)).rows.map((r) => r.body);
      } catch {
        // refused: as it should be
      }
      expect(seen.join(' ')).not.toContain(SECRET);
      // And bob's products, through pgferry's own pass-through policy for PUBLIC.
      let products: string[] = [];
      await db.pool.query(`create policy app_everyone on app.products for all to public using (true)`);
      try {
        try {
          products = (await login.client.query(`select name from app.products`)).rows.map((r) => r.name);
        } catch {
          // refused
        }
      } finally {
        await db.pool.query(`drop policy app_everyone on app.products`);
      }
      expect(products.join(' ')).not.toContain(SECRET);
    } finally {
      await login.drop();
    }
    await expectBobUntouched();
  });

  // Known limitation (README, "What isolation does not cover"): PostgreSQL's catalogs are
  // readable by every role, so a tenant can see another tenant's mapping text and file headers
  // (not its rows) while that tenant's load runs or its staging is kept. Kept here, skipped,
  // as the test to turn on once compiled bodies and staged names no longer carry them.
  it.skip("a mapping cannot read another tenant's mapping text or file headers from the catalogs", async () => {
    // bob's compiled functions hold bob's mapping text, and bob's staging table has bob's file
    // headers as its column names: both are world-readable in pg_proc and pg_attribute while
    // the load runs, and for good with --keep-staging.
    const mapping = writeFile(
      dir,
      'bob_r2.sql',
      `${HEADER}select s.sku as sku, coalesce(nullif(s.name, ''), '${SECRET}-default') as name, s.price as price\nfrom staged s\n`,
    );
    const file = writeFile(dir, 'bob_r2.csv', `sku,name,price,${SECRET}_margin\nB7,Bolt,7.00,42\n`);
    const kept = await load(db.pool, { file, tenant: 'bob', mapping, keepStaging: true, force: true });
    expect(kept.status).toBe('succeeded');
    try {
      await attacker('ev7');
      const a = await attempt(
        'ev7',
        'ev7_catalogs',
        `${HEADER}select s.sku as sku,
       coalesce((select string_agg(p.prosrc, ' ') from pg_proc p where p.pronamespace = 'ferry_t_bob'::regnamespace), '')
       || coalesce((select string_agg(a.attname, ' ') from pg_attribute a join pg_class c on c.oid = a.attrelid
                    where c.relnamespace = 'ferry_t_bob'::regnamespace), '') as name,
       s.price as price
from staged s
`,
      );
      void a;
      const names = (await rowsOf('ev7')).map((r) => r.name).join(' ');
      expect(names).not.toContain(SECRET);
    } finally {
      await db.pool.query('select ferry.cleanup_load($1)', [kept.loadId]);
      await db.pool.query(`delete from app.products where tenant_id in ('ev7', 'bob') and sku <> all ('{B1,B2}')`);
      await reseedBob();
    }
  });

  it('a tenant key cannot match another tenant under the tenant column’s own (nondeterministic) collation', async () => {
    // check_key_distinct() compares keys cast to format_type(), which has no collation; the
    // policies compare under the column's collation, where 'BOB' = 'bob'.
    await db.pool.query(`
      create collation if not exists r2_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      create table app.ci_notes (tenant_id text collate r2_ci not null, id integer not null, body text not null);
      insert into app.ci_notes values ('bob', 1, '${SECRET} ci note');`);
    await protectTable(db.pool, 'app.ci_notes');
    const added = await addTenant(db.pool, 'ev8', 'BOB').then(
      (t) => t,
      () => undefined,
    );
    if (added) {
      const seen = await db.withClient(async (c) => {
        await c.query('begin');
        try {
          return (await c.query('select body from app.ci_notes')).rows.map((r) => r.body);
        } finally {
          await c.query('rollback');
        }
      }, added.roleName);
      expect(seen.join(' ')).not.toContain(SECRET);
    }
  });

  it('a tenant named like the tenant group does not become the group', async () => {
    // Tenant roles are pgf_<instance>_<slug>, the group is pgf_<instance>_tenants: add_tenant
    // adopts the existing group as the tenant's role, and every tenant inherits its policies
    // (and its ownership of ferry_t_tenants).
    await productsTable(db2.pool, ['bob']);
    await reseedBob(db2.pool);
    const { rows: g } = await db2.pool.query('select ferry.tenant_group()::text as g');
    const added = await addTenant(db2.pool, 'tenants').then(
      (t) => t,
      () => undefined,
    );
    // bob still loads its own rows.
    const mapping = writeFile(dir, 'db2_bob.sql', HONEST);
    const file = writeFile(dir, 'db2_bob.csv', 'sku,name,price\nB3,Bracket,3.00\n');
    const result = await load(db2.pool, { file, tenant: 'bob', mapping, force: true });
    expect({
      status: result.status,
      error: result.error,
      rejected: result.counts.rejected,
      reasons: result.reasons.map((r) => r.example),
    }).toEqual({
      error: undefined,
      status: 'succeeded',
      rejected: 0,
      reasons: [],
    });
    expect((await rowsOf('bob', db2.pool)).map((r) => r.sku)).toEqual(['B1', 'B2', 'B3']);
    if (added) expect(added.roleName).not.toBe(g[0].g);
  });
});

describe('roles pgferry adopts', () => {
  // Only a superuser (or a BYPASSRLS role) may create a BYPASSRLS role: the squatter here.
  it('add_tenant does not adopt an existing role of the same name with LOGIN or BYPASSRLS (a superuser makes that role)', async () => {
    // Tenant role names are predictable (pg_roles shows pgf_<instance>_*): a role made
    // beforehand under the next tenant's name (by a CREATEROLE login, or left by an earlier
    // database of the same instance id) becomes that tenant's role as it is.
    const { rows } = await db.pool.query(`select ferry.tenant_role_name('ev9')::text as r`);
    const squatted = rows[0].r as string;
    const superuser = new pg.Client({ connectionString: databaseUrl(inject('superuserUrl'), db.name) });
    await superuser.connect();
    await superuser.query(`create role ${squatted} login bypassrls password '${randomBytes(12).toString('hex')}'`);
    try {
      const added = await addTenant(db.pool, 'ev9').then(
        (t) => t,
        () => undefined,
      );
      if (added) {
        const { rows: attrs } = await db.pool.query(
          `select rolcanlogin, rolbypassrls, rolsuper from pg_roles where rolname = $1`,
          [added.roleName],
        );
        expect(attrs[0]).toEqual({ rolcanlogin: false, rolbypassrls: false, rolsuper: false });
      }
    } finally {
      // Made by the superuser, so only it can drop it (the test role cannot, on 16+).
      await superuser.query(`drop owned by ${squatted}`);
      await superuser.query(`drop role ${squatted}`);
      await superuser.end();
    }
  });
});

describe('code of the application', () => {
  // Known limitation (README, "What isolation does not cover"): tenant keys are cast to the
  // tenant column's type as the loader, so a domain CHECK written by the application's owner
  // runs with the loader's rights. The owner of the application's schema is trusted.
  it.skip("protect does not run the application's own code (a domain CHECK on the tenant column) as the loader", async () => {
    // check_key_distinct() casts every tenant key to the tenant column's type as the loader: a
    // domain's CHECK is a function of the application's owner, run with the loader's rights.
    const owner = `r2_app_owner_${randomBytes(4).toString('hex')}`;
    await createRoleAsMember(db2.pool, owner, 'nologin nosuperuser');
    await db2.pool.query(`create schema r2app authorization ${owner}`);
    await addTenant(db2.pool, 'carol').catch(() => undefined);
    await addTenant(db2.pool, 'dave').catch(() => undefined);
    try {
      await db2.withClient(async (c) => {
        await c.query(`
          create table r2app.calls (who text not null);
          grant insert on r2app.calls to public;
          create function r2app.key_ok(v text) returns boolean language plpgsql as $f$
          begin
            insert into r2app.calls values (current_user::text);
            return true;
          end $f$;
          create domain r2app.tenant_key as text check (r2app.key_ok(value));
          create table r2app.items (tenant_id r2app.tenant_key not null, id integer not null);`);
      }, owner);
      await protectTable(db2.pool, 'r2app.items').catch(() => undefined);
      const { rows } = await db2.pool.query(
        `select distinct c.who from r2app.calls c join pg_roles r on r.rolname = c.who where r.rolsuper or r.rolbypassrls`,
      );
      expect(rows, "the application's function ran as a superuser").toEqual([]);
    } finally {
      await db2.pool.query(`drop schema r2app cascade`);
      await db2.pool.query(`delete from ferry.protected_tables where schema_name = 'r2app'`);
      await db2.pool.query(`drop role ${owner}`);
    }
  });
});

describe('what held', () => {
  it('sanity: an honest load for a new tenant succeeds and leaves bob alone', async () => {
    await attacker('ok1');
    const a = await attempt('ok1', 'ok1_honest', HONEST);
    expect(a.result?.status).toBe('succeeded');
    expect((await rowsOf('ok1')).map((r) => r.sku)).toEqual(['N1', 'N2']);
    await expectBobUntouched();
  });

  it('plpgsql syntax in a mapping or a check ($1, variables, labels, directives) is refused before anything runs', async () => {
    await attacker('ok2');
    const bodies = [
      `${HEADER}select s.sku as sku, s.name || $1 as name, s.price as price\nfrom staged s\n`,
      `${HEADER}select s.sku as sku, s.name || v_line::text as name, s.price as price\nfrom staged s\n`,
      `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s;\nend; <<x>> begin update app.products set name = 'x' where tenant_id = 'bob'; end\n`,
      `${HEADER}-- check: w._line = v_line | x\nselect s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      `${HEADER}-- check: true), true); return; select ((true | x\nselect s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      `${HEADER}-- check: #variable_conflict use_column\n-- check: true | x\nselect s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      `${HEADER}select s.sku as sku, U&'\\0027); drop table app.products; --' as name, s.price as price\nfrom staged s\n`,
      `${HEADER}select s.sku as sku, E'\\'); drop table app.products; --' as name, s.price as price\nfrom staged s\n`,
    ];
    for (const [i, body] of bodies.entries()) {
      const a = await attempt('ok2', `ok2_${i}`, body);
      expect(a.text).not.toContain(SECRET);
      await expectBobUntouched();
    }
  });

  it('a mapping that turns standard_conforming_strings off does not change how the loader reads its own literals', async () => {
    await attacker('ok3');
    const a = await attempt(
      'ok3',
      'ok3_scs',
      `${HEADER}-- check: price < 100 | a \\ backslash's message
select s.sku as sku, s.name || left(set_config('standard_conforming_strings', 'off', false), 0) as name, s.price as price
from staged s
`,
    );
    expect(a.result?.status).toBe('succeeded');
    await expectBobUntouched();
  });

  it('a tenant key with trailing spaces is refused where the tenant column is char(n)', async () => {
    await db.pool.query(`
      create table app.fixed (tenant_id char(8) not null, id integer not null);
      insert into app.fixed values ('bob', 1);`);
    await protectTable(db.pool, 'app.fixed');
    await expect(addTenant(db.pool, 'ok4', 'bob  ')).rejects.toThrow(/same key/);
  });

  it('the superuser connection used by the loader is never left as another role', async () => {
    const { rows } = await db.pool.query('select current_user as u, session_user as s');
    expect(rows[0]).toEqual({ u: superuser, s: superuser });
  });
});
