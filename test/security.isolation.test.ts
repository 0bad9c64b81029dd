// Tries to break tenant isolation: hostile mappings and check expressions loaded through the
// public `load()` API for tenant acme, and the tenant roles probed directly, as a superuser
// session and as a non-superuser login. Tenant bob's rows carry the marker BOBSECRET: it must
// never reach acme's rows, acme's loads, rejects, errors or results, and bob's rows must never
// change. Every test asserts the secure behaviour, so a hole shows up as a failing test.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import type { LoadResult } from '../src/load/types.js';
import { protectTable } from '../src/tenants.js';
import { PRODUCTS_DDL, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { createRoleAsMember } from './helpers/test-role.js';

let db: TestDatabase;
let dir: string;
let superuser: string;
let acmeRole: string;
let bobRole: string;
let bobStaging: { loadId: number; schema: string };

const SECRET = 'BOBSECRET';
const BOB_ROWS = [
  { tenant_id: 'bob', sku: 'B1', name: `${SECRET}-one`, price: '1.00', stock_quantity: 5 },
  { tenant_id: 'bob', sku: 'B2', name: `${SECRET}-two`, price: '2.00', stock_quantity: 7 },
];
const ACME_ROWS = [{ tenant_id: 'acme', sku: 'A1', name: 'Anvil', price: '10.00', stock_quantity: 1 }];
const CSV = 'sku,name,price\nN1,Nail,0.10\nN2,Nut,0.20\n';

/** Puts app.products back as the tests expect it, even if an attack dropped it. */
async function reseed(): Promise<void> {
  const { rows } = await db.pool.query(`select to_regclass('app.products') is not null as ok`);
  if (!rows[0].ok) {
    await db.pool.query(PRODUCTS_DDL);
    await protectTable(db.pool, 'app.products');
  }
  await db.pool.query('truncate app.products');
  for (const r of [...ACME_ROWS, ...BOB_ROWS]) {
    await db.pool.query(
      'insert into app.products (tenant_id, sku, name, price, stock_quantity) values ($1, $2, $3, $4, $5)',
      [r.tenant_id, r.sku, r.name, r.price, r.stock_quantity],
    );
  }
  await db.pool.query('analyze app.products');
}

async function rowsOf(tenant: string) {
  const { rows } = await db.pool.query(
    `select tenant_id, sku, name, price::text as price, stock_quantity from app.products where tenant_id = $1 order by sku`,
    [tenant],
  );
  return rows;
}

/** bob's rows exactly as seeded; nothing of bob's under acme; no third tenant appeared. */
async function expectBobUntouched(): Promise<void> {
  const { rows: exists } = await db.pool.query(`select to_regclass('app.products') is not null as ok`);
  expect(exists[0].ok, 'app.products must survive').toBe(true);
  expect(await rowsOf('bob')).toEqual(BOB_ROWS);
  const { rows } = await db.pool.query(
    `select * from app.products
     where tenant_id not in ('acme', 'bob')
        or (tenant_id = 'acme' and (to_jsonb(products)::text like '%' || $1 || '%' or sku like 'B%'))`,
    [SECRET],
  );
  expect(rows).toEqual([]);
}

/** Nothing of bob's shows in what acme's loads left in the catalog. */
async function expectNoLeakInCatalog(): Promise<void> {
  const { rows } = await db.pool.query(
    `select l.id, l.error, r.column_name, r.value, r.message, r.raw, u.key, u.before
     from ferry.loads l
     join ferry.tenants t on t.id = l.tenant_id and t.slug = 'acme'
     left join ferry.rejects r on r.load_id = l.id
     left join ferry.undo u on u.load_id = l.id`,
  );
  expect(JSON.stringify(rows)).not.toContain(SECRET);
}

interface Attempt {
  result?: LoadResult;
  error?: unknown;
  /** Everything the caller got back: result or error, with pg's detail and hint. */
  text: string;
}

/** Loads CSV for acme through a mapping with the given text; never throws. */
async function attempt(name: string, mappingText: string, csv = CSV, tenant = 'acme'): Promise<Attempt> {
  const mapping = writeFile(dir, `${name}.sql`, mappingText);
  const file = writeFile(dir, `${name}.csv`, csv);
  try {
    const result = await load(db.pool, { file, tenant, mapping, force: true });
    return { result, text: JSON.stringify(result) };
  } catch (error) {
    const e = error as Error & { cause?: { detail?: string; hint?: string; message?: string } };
    return { error, text: `${e.message} ${e.cause?.message ?? ''} ${e.cause?.detail ?? ''} ${e.cause?.hint ?? ''}` };
  }
}

function failed(a: Attempt): boolean {
  return a.error !== undefined || a.result?.status === 'failed';
}

const HEADER = '-- target: app.products\n-- key: sku\n';

/**
 * The tail of a payload that escapes the mapping's SELECT: it closes the parentheses pgferry
 * wraps the SELECT in, and ends in a statement that swallows what follows it everywhere
 * compile_load() puts the text (CREATE TABLE AS … WITH NO DATA, the `… limit 0` privilege
 * probe, and the plpgsql body of transform_<id>()). Statements in between run at compile time
 * (EXECUTE runs every statement of a string) and again inside transform_<id>().
 */
const ESCAPE = 'from staged s\n  ) as mapping\n) as m;\n';
const ABSORB = 'create temp table if not exists pgferry_absorb as select * from (select * from (select 1 as x';

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'bob']);
  const { rows } = await db.pool.query(
    `select current_user as su,
            (select role_name from ferry.tenants where slug = 'acme') as acme,
            (select role_name from ferry.tenants where slug = 'bob') as bob`,
  );
  superuser = rows[0].su;
  acmeRole = rows[0].acme;
  bobRole = rows[0].bob;

  // One of bob's loads keeps its staging tables and compiled functions around.
  await reseed();
  const mapping = writeFile(
    dir,
    'bob_products.sql',
    `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
  );
  const file = writeFile(dir, 'bob.csv', `sku,name,price\nB9,${SECRET}-staged,9.00\n`);
  const result = await load(db.pool, { file, tenant: 'bob', mapping, keepStaging: true });
  expect(result.status).toBe('succeeded');
  bobStaging = { loadId: result.loadId!, schema: 'ferry_t_bob' };
});

beforeEach(async () => {
  await reseed();
});

describe('a mapping for acme cannot reach bob', () => {
  it('sanity: an honest mapping loads acme rows and leaves bob alone', async () => {
    const a = await attempt(
      'honest',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
    );
    expect(a.result?.status).toBe('succeeded');
    expect((await rowsOf('acme')).map((r) => r.sku)).toEqual(['A1', 'N1', 'N2']);
    await expectBobUntouched();
  });

  it('(a) refuses a mapping that outputs tenant_id, naming the column, before any data moves', async () => {
    for (const [name, expr] of [
      ['tenant_lower', `'bob' as tenant_id`],
      ['tenant_upper', `'bob' as TENANT_ID`],
      ['tenant_quoted', `'bob' as "tenant_id"`],
    ]) {
      const a = await attempt(
        name,
        `${HEADER}select s.sku as sku, s.name as name, s.price as price, ${expr}\nfrom staged s\n`,
      );
      expect(a.error, name).toBeDefined();
      expect(a.text).toMatch(/tenant_id/);
      const { rows } = await db.pool.query(
        `select l.status, l.rows_staged from ferry.loads l join ferry.mappings m on m.id = l.mapping_id
         where m.name = $1 order by l.id desc limit 1`,
        [name],
      );
      expect(rows[0]).toMatchObject({ status: 'failed' });
      expect(Number(rows[0].rows_staged)).toBe(0);
    }
    expect(await rowsOf('acme')).toEqual(ACME_ROWS);
    await expectBobUntouched();
  });

  it('(b) an unfiltered scalar subquery over app.products sees only acme rows', async () => {
    const a = await attempt(
      'subquery_all',
      `${HEADER}select s.sku as sku,
       coalesce((select string_agg(p.name, '|' order by p.name) from app.products p), 'none')
         || '#' || (select count(*) from app.products p where p.tenant_id <> 'acme') as name,
       s.price as price
from staged s
`,
    );
    expect(a.result?.status).toBe('succeeded');
    const names = (await rowsOf('acme')).filter((r) => r.sku.startsWith('N')).map((r) => r.name);
    expect(names).toEqual(['Anvil#0', 'Anvil#0']);
    await expectBobUntouched();
    await expectNoLeakInCatalog();
  });

  it("(b) a join that copies bob's rows under acme gets nothing", async () => {
    for (const [name, sql] of [
      [
        'join_copy',
        `select p.sku || '-copy' as sku, p.name as name, p.price::text as price
from staged s
join app.products p on p.tenant_id = 'bob'`,
      ],
      [
        'cte_copy',
        `with stolen as (select * from app.products where tenant_id <> 'acme')
select st.sku as sku, st.name as name, st.price::text as price
from staged s, stolen st`,
      ],
      [
        'lateral_copy',
        `select coalesce(x.sku, s.sku) as sku, coalesce(x.name, s.name) as name, coalesce(x.price::text, s.price) as price
from staged s
left join lateral (select * from app.products p where p.tenant_id = 'bob' offset 0) x on true`,
      ],
    ]) {
      const a = await attempt(name, `${HEADER}${sql}\n`);
      expect(a.text, name).not.toContain(SECRET);
      await expectBobUntouched();
    }
    await expectNoLeakInCatalog();
  });

  it('(c) cannot read the ferry catalog', async () => {
    for (const table of ['rejects', 'undo', 'loads', 'tenants', 'mappings', 'audit', 'settings']) {
      const name = `catalog_${table}`;
      const a = await attempt(
        name,
        `${HEADER}select s.sku as sku, (select count(*)::text from ferry.${table}) || s.name as name, s.price as price\nfrom staged s\n`,
      );
      expect(failed(a), name).toBe(true);
      expect(a.text).toMatch(/permission denied/);
      expect(a.text).not.toContain(SECRET);
    }
    expect(await rowsOf('acme')).toEqual(ACME_ROWS);
    await expectBobUntouched();
    await expectNoLeakInCatalog();
  });

  it("(c) cannot read bob's staging, work or plan tables, nor call bob's compiled functions", async () => {
    const id = bobStaging.loadId;
    const probes = [
      `(select string_agg(x.name, ',') from ferry_t_bob.stage_${id} x)`,
      `(select string_agg(x.name, ',') from ferry_t_bob.work_${id} x)`,
      `(select string_agg(x.name, ',') from ferry_t_bob.mapped_${id} x)`,
      `(select string_agg(x.name, ',') from ferry_t_bob.plan_${id} x)`,
      `(select string_agg(x.value, ',') from ferry_t_bob.rejects_${id} x)`,
      `(select ferry_t_bob.plan_${id}()::text)`,
    ];
    for (const [i, probe] of probes.entries()) {
      const a = await attempt(
        `bobstage_${i}`,
        `${HEADER}select s.sku as sku, ${probe} as name, s.price as price\nfrom staged s\n`,
      );
      expect(failed(a), probe).toBe(true);
      expect(a.text).toMatch(/permission denied/);
      expect(a.text).not.toContain(SECRET);
    }
    expect(await rowsOf('acme')).toEqual(ACME_ROWS);
    await expectBobUntouched();
    await expectNoLeakInCatalog();
  });

  it('(d) cannot change role or session authorization from inside the mapping', async () => {
    const calls = [
      `set_config('role', '${superuser}', true)`,
      `set_config('role', '${superuser}', false)`,
      `set_config('role', 'none', true)`,
      `set_config('role', '${bobRole}', true)`,
      `set_config('session_authorization', '${superuser}', true)`,
      `set_config('session_authorization', 'default', false)`,
    ];
    for (const [i, call] of calls.entries()) {
      // The call comes first, then a read of bob's rows that would succeed if it had worked.
      const a = await attempt(
        `setrole_${i}`,
        `${HEADER}select s.sku as sku,
       x.v || (select coalesce(string_agg(p.name, ','), '') from app.products p where p.tenant_id = 'bob') as name,
       s.price as price
from staged s
cross join lateral (select ${call} as v) x
`,
      );
      expect(failed(a), call).toBe(true);
      expect(a.text).toMatch(/role|session_authorization|security-definer|permission/);
      expect(a.text).not.toContain(SECRET);
      await expectBobUntouched();
    }
    expect(await rowsOf('acme')).toEqual(ACME_ROWS);
    await expectNoLeakInCatalog();
  });

  it('(e) setting arbitrary GUCs does not widen access', async () => {
    const a = await attempt(
      'guc_tenant',
      `${HEADER}select s.sku as sku,
       x.v || '#' || (select count(*) from app.products p where p.tenant_id = 'bob')
           || '#' || (select coalesce(string_agg(p.name, ','), '') from app.products p where p.tenant_id = 'bob') as name,
       s.price as price
from staged s
cross join lateral (
  select set_config('app.tenant', 'bob', false) || set_config('app.tenant_id', 'bob', true)
      || set_config('pgferry.tenant', 'bob', true) || set_config('search_path', 'ferry, ferry_t_bob, public', true) as v
) x
`,
    );
    expect(a.text).not.toContain(SECRET);
    if (a.result?.status === 'succeeded') {
      const names = (await rowsOf('acme')).filter((r) => r.sku.startsWith('N')).map((r) => r.name);
      for (const n of names) expect(n).toMatch(/#0#$/);
    }
    await expectBobUntouched();

    // row_security = off makes a query that RLS would filter fail rather than see more.
    const b = await attempt(
      'guc_row_security',
      `${HEADER}select s.sku as sku,
       x.v || (select coalesce(string_agg(p.name, ','), '') from app.products p) as name,
       s.price as price
from staged s
cross join lateral (select set_config('row_security', 'off', true) as v) x
`,
    );
    expect(b.text).not.toContain(SECRET);
    await expectBobUntouched();
    await expectNoLeakInCatalog();
  });

  it('(f) dollar-quote tags, quotes, comment tricks and stray statements stay inside the SELECT', async () => {
    const bodies = [
      // pgferry's own dollar-quote tag style, as data and as quoting
      `select s.sku as sku, '$pgferry_0123456789ab$ end; drop table app.products; $pgferry_0123456789ab$' as name, s.price as price\nfrom staged s`,
      `select s.sku as sku, $pgferry_$ $$ end $$; drop table app.products; -- $pgferry_$ as name, s.price as price\nfrom staged s`,
      `select s.sku as sku, $$'); drop table app.products; --$$ as name, s.price as price\nfrom staged s`,
      // unbalanced: close the wrapper and start a second statement
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s); drop table app.products; --`,
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s; drop table app.products`,
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s;\ndrop table app.products;\nselect 1`,
      // comments that try to swallow pgferry's own code
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s /*`,
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s */ ; drop table app.products; /*`,
      `select s.sku as sku, s.name /* ) as mapping ) as m; drop table app.products; -- */ as name, s.price as price\nfrom staged s`,
      `select s.sku as sku, s.name as name, s.price as price\nfrom staged s -- ) as mapping ) as m; drop table app.products;`,
      // the tenant's own rights: dropping a table it does not own
      `select s.sku as sku, s.name as name, s.price as price\n${ESCAPE}drop table app.products;\n${ABSORB}`,
      `select s.sku as sku, s.name as name, s.price as price\n${ESCAPE}delete from app.products where tenant_id = 'bob';\nupdate app.products set tenant_id = 'acme' where tenant_id = 'bob';\n${ABSORB}`,
    ];
    for (const [i, body] of bodies.entries()) {
      const a = await attempt(`hostile_text_${i}`, `${HEADER}${body}\n`);
      expect(a.text, body).not.toContain(SECRET);
      await expectBobUntouched();
    }
    await expectNoLeakInCatalog();
  });

  it('(f) a mapping is one SELECT: text that escapes it is refused before anything runs', async () => {
    // Deleting acme's own rows is within acme's rights, but it is not a SELECT, it runs at
    // compile time, outside the load's undo log, and no `rollback` can bring the rows back.
    const a = await attempt(
      'escape_delete_own',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price\n${ESCAPE}delete from app.products where tenant_id = 'acme';\n${ABSORB}\n`,
    );
    expect(a.error ?? a.result?.error, 'a mapping with a second statement must be refused').toBeDefined();
    expect(await rowsOf('acme')).toEqual(ACME_ROWS);
    await expectBobUntouched();
  });

  it("(f) a statement after the SELECT cannot `reset role` to the loader's role at compile time", async () => {
    // compile_load() switches to the tenant with set_config('role', …, true) and EXECUTEs the
    // mapping text, which may hold several statements: RESET ROLE brings back the loader.
    const a = await attempt(
      'escape_reset_role',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
${ESCAPE}reset role;
update app.products set name = name || ' pwned by acme' where tenant_id = 'bob';
${ABSORB}
`,
    );
    void a;
    await expectBobUntouched();
  });

  it("(f) a statement after the SELECT cannot read bob's rows as the loader and leak them in an error", async () => {
    const a = await attempt(
      'escape_reset_role_leak',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
${ESCAPE}reset role;
do $x$ begin
  if current_user <> session_user then return; end if;
  raise exception 'leak: %', (select string_agg(name, ',') from app.products where tenant_id = 'bob');
end $x$;
${ABSORB}
`,
    );
    expect(a.text).not.toContain(SECRET);
    await expectNoLeakInCatalog();
  });

  it('(f) a trigger the tenant puts on its own staging table does not run as the loader', async () => {
    // The escaped statements run as acme at compile time, when the staging table (owned by
    // acme) already exists; the loader then COPYs into it as itself, firing the trigger.
    const a = await attempt(
      'escape_stage_trigger',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
${ESCAPE}create or replace function ferry_t_acme.pwn() returns trigger language plpgsql as $x$
begin
  update app.products set name = name || ' pwned by trigger' where tenant_id = 'bob';
  return new;
end $x$;
do $x$ declare t text; begin
  select format('%I.%I', schemaname, tablename) into t from pg_tables
  where schemaname = 'ferry_t_acme' and tablename like 'stage\\_%' order by length(tablename) desc, tablename desc limit 1;
  if t is not null and not exists (select from pg_trigger where tgname = 'pwn' and tgrelid = t::regclass) then
    execute format('create trigger pwn before insert on %s for each row execute function ferry_t_acme.pwn()', t);
  end if;
end $x$;
${ABSORB}
`,
    );
    void a;
    await expectBobUntouched();
  });

  it('(f) the tenant cannot turn its compiled functions into SECURITY INVOKER ones that the loader then calls', async () => {
    // At run time the escaped statements run inside transform_<id>() as acme, which owns
    // plan_<id>(): replaced by an invoker function, the loader runs it as itself.
    const a = await attempt(
      'escape_replace_plan',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
${ESCAPE}do $x$ declare f text; begin
  select format('%I.%I', n.nspname, p.proname) into f
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname = 'ferry_t_acme' and p.proname like 'plan\\_%' order by p.oid desc limit 1;
  if f is not null then
    execute format($f$create or replace function %s() returns bigint language plpgsql as $b$
      begin
        raise exception 'leak as %%: %%', current_user,
          (select string_agg(name, ',') from app.products where tenant_id = 'bob');
      end $b$$f$, f);
  end if;
end $x$;
${ABSORB}
`,
    );
    expect(a.text).not.toContain(SECRET);
    await expectBobUntouched();
    await expectNoLeakInCatalog();
  });
});

describe("a mapping leaves nothing behind in the loader's pooled connections", () => {
  /** Runs fn on every connection the pool can hold at once, then resets them. */
  async function everyConnection<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T[]> {
    const clients = await Promise.all(Array.from({ length: 4 }, () => db.pool.connect()));
    try {
      return await Promise.all(clients.map(fn));
    } finally {
      for (const c of clients) {
        await c.query('discard all').catch(() => {});
        c.release();
      }
    }
  }

  it('session settings a mapping makes do not outlive its load', async () => {
    // set_config(…, false) commits with the transform's transaction and stays on the pooled
    // connection, where the next load — another tenant's — and the loader's own code run.
    const a = await attempt(
      'guc_persist',
      `${HEADER}select s.sku as sku, s.name || x.v as name, s.price as price
from staged s
cross join lateral (
  select left(set_config('search_path', 'ferry_t_acme, pg_catalog', false)
      || set_config('app.tenant', 'bob', false)
      || set_config('statement_timeout', '987654', false)
      || set_config('lock_timeout', '987653', false), 0) as v
) x
`,
    );
    expect(a.result?.status).toBe('succeeded');
    const settings = await everyConnection(async (c) => {
      const { rows } = await c.query(
        `select current_setting('search_path') as search_path, coalesce(current_setting('app.tenant', true), '') as app_tenant,
                current_setting('statement_timeout') as statement_timeout, current_setting('lock_timeout') as lock_timeout`,
      );
      return rows[0];
    });
    for (const row of settings) {
      expect(row).toEqual({
        search_path: '"$user", public',
        app_tenant: '',
        statement_timeout: '0',
        lock_timeout: '0',
      });
    }
  });

  it('temporary objects a mapping creates do not outlive its load', async () => {
    // Temporary relations are searched before pg_catalog and before the compiled functions'
    // `search_path = public`: one left on a pooled connection shadows names the next load uses.
    const a = await attempt(
      'temp_persist',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
${ESCAPE}create temp table if not exists pgferry_left_behind (x int);
${ABSORB}
`,
    );
    // Today the text of several statements is refused before any of it runs; should a way
    // through be found, nothing it creates may be left behind either.
    expect(a.text).toContain('cannot open multi-query plan as cursor');
    const leftovers = await everyConnection(async (c) => {
      const { rows } = await c.query(
        `select c.relname::text, pg_get_userbyid(c.relowner)::text as owner from pg_class c
         where c.relnamespace = pg_my_temp_schema() and c.relkind in ('r', 'v', 'p', 'S')`,
      );
      return rows;
    });
    expect(leftovers.flat().filter((r) => r.owner !== superuser)).toEqual([]);
  });

  it('session advisory locks a mapping takes do not outlive its load', async () => {
    // One left on a pooled connection would block whoever asks for it next, for as long as
    // the process lives.
    const a = await attempt(
      'lock_persist',
      `${HEADER}select s.sku as sku, s.name || x.v as name, s.price as price
from staged s
cross join lateral (select left(pg_advisory_lock(424242)::text, 0) as v) x
`,
    );
    expect(a.result?.status).toBe('succeeded');
    const leftovers = await everyConnection(async (c) => {
      const { rows } = await c.query(
        `select 'prepared ' || name as what from pg_prepared_statements where from_sql
         union all
         select 'advisory lock ' || objid from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()`,
      );
      return rows.map((r) => r.what as string);
    });
    expect(leftovers.flat()).toEqual([]);
  });

  it("the connection's own prepared statements survive (graphile-worker prepares its own on the pool)", async () => {
    const single = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const named = { name: 'pgferry_test_named', text: 'select 1 as one' };
      expect((await single.query(named)).rows).toEqual([{ one: 1 }]);
      const result = await load(single, {
        file: writeFile(dir, 'named.csv', CSV),
        tenant: 'acme',
        mapping: writeFile(
          dir,
          'named.sql',
          `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
        ),
        force: true,
      });
      expect(result.status).toBe('succeeded');
      // pg sends only the name now: the statement must still be prepared on the server.
      expect((await single.query(named)).rows).toEqual([{ one: 1 }]);
    } finally {
      await single.end();
    }
  });
});

describe('no dynamic SQL reachable from a SELECT', () => {
  it("ferry_util.input_error does not run a type name as SQL (PostgreSQL 15's fallback EXECUTEs it)", async () => {
    // As the tenant role, directly.
    await db.withClient(async (c) => {
      await c
        .query(
          `select ferry_util.input_error('1', 'integer; create table ferry_t_acme.pwned_by_type_name as select 1 as x; select 1')`,
        )
        .catch(() => {});
    }, acmeRole);
    const { rows } = await db.pool.query(`select to_regclass('ferry_t_acme.pwned_by_type_name') is null as absent`);
    expect(rows[0].absent).toBe(true);

    // Through a mapping: DDL run by the tenant inside transform_<id>() puts a trigger on its
    // rejects table, which the loader truncates as itself (ferry.collect_rejects).
    const ddl = [
      'integer',
      `create or replace function ferry_t_acme.pwn15() returns trigger language plpgsql as $f$ begin update app.products set name = name || $s$ pwned via input_error$s$ where tenant_id = $s$bob$s$; return null; end $f$`,
      `do $d$ declare t text; begin select format($s$%I.%I$s$, schemaname, tablename) into t from pg_tables where schemaname = $s$ferry_t_acme$s$ and tablename like $s$rejects\\_%$s$ order by length(tablename) desc, tablename desc limit 1; if t is not null and not exists (select from pg_trigger where tgname = $s$pwn15$s$ and tgrelid = t::regclass) then execute format($s$create trigger pwn15 before truncate on %s for each statement execute function ferry_t_acme.pwn15()$s$, t); end if; end $d$`,
      'select 1',
    ].join('; ');
    const a = await attempt(
      'input_error_injection',
      `${HEADER}select s.sku as sku, s.name || coalesce(ferry_util.input_error('1', '${ddl}'), '') as name, s.price as price
from staged s
`,
    );
    expect(a.text).not.toContain(SECRET);
    await expectBobUntouched();
  });

  it('the dollar-quote tag around compiled code cannot be predicted by seeding random() in an earlier load', async () => {
    // One connection, as a worker with a small pool would have: load 1's mapping calls
    // setseed() at run time; load 2's compile_load() then draws its tag from random().
    const single = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const seedMapping = writeFile(
        dir,
        'seed_random.sql',
        `${HEADER}select s.sku as sku, s.name || coalesce(x.v, '') as name, s.price as price
from staged s
cross join lateral (select setseed(0.25)::text as v) x
`,
      );
      const first = await load(single, {
        file: writeFile(dir, 'seed1.csv', CSV),
        tenant: 'acme',
        mapping: seedMapping,
        force: true,
      });
      expect(first.status).toBe('succeeded');
      const honest = writeFile(
        dir,
        'seed_honest.sql',
        `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      );
      const second = await load(single, {
        file: writeFile(dir, 'seed2.csv', CSV),
        tenant: 'acme',
        mapping: honest,
        force: true,
      });
      const { rows } = await db.pool.query(`select compiled_sql from ferry.loads where id = $1`, [second.loadId]);
      const predicted = await db.withClient(async (c) => {
        await c.query('select setseed(0.25)');
        return (await c.query(`select '$pgferry_' || substr(md5(random()::text), 1, 12) || '$' as tag`)).rows[0]
          .tag as string;
      });
      expect(rows[0].compiled_sql).toBeTruthy();
      expect(rows[0].compiled_sql).not.toContain(predicted);
    } finally {
      await single.end();
    }
  });
});

describe('foreign keys do not reach across tenants', () => {
  beforeAll(async () => {
    await db.pool.query(`
      create table app.categories (tenant_id text not null, id integer primary key, label text not null);
      create table app.items (
        tenant_id   text not null,
        sku         text not null,
        category_id integer references app.categories (id),
        primary key (tenant_id, sku)
      );
      insert into app.categories values ('acme', 1, 'acme tools'), ('bob', 7, '${SECRET} category');`);
    await protectTable(db.pool, 'app.categories');
    await protectTable(db.pool, 'app.items');
  });

  it("a row of acme cannot reference bob's row, and the reject does not tell bob's id from a missing one", async () => {
    // PostgreSQL's own foreign-key checks bypass row-level security: an id of bob's passes.
    const a = await attempt(
      'fk_items',
      `-- target: app.items\n-- key: sku\nselect s.sku as sku, s.category_id as category_id\nfrom staged s\n`,
      'sku,category_id\nI1,1\nI2,7\nI3,99\n',
    );
    expect(a.result?.status).toBe('succeeded');
    const { rows } = await db.pool.query(
      `select sku, category_id from app.items where tenant_id = 'acme' order by sku`,
    );
    const { rows: rejects } = await db.pool.query(
      `select r.line, r.rule from ferry.rejects r where r.load_id = $1 and r.line in (3, 4) order by r.line`,
      [a.result?.loadId],
    );
    // Lines 3 (bob's id 7) and 4 (no such id) must both be rejected, for the same reason.
    expect({
      items: rows,
      rejectedLines: rejects.map((r) => Number(r.line)),
      rules: [...new Set(rejects.map((r) => r.rule))].length,
    }).toEqual({
      items: [{ sku: 'I1', category_id: 1 }],
      rejectedLines: [3, 4],
      rules: 1,
    });
  });
});

describe('(g) check expressions for acme cannot reach bob', () => {
  it('sees only acme rows in a subquery', async () => {
    const a = await attempt(
      'check_subquery',
      `${HEADER}-- check: (select count(*) from app.products p where p.tenant_id = 'bob') = 0 | bob is invisible
-- check: not exists (select from app.products p where p.name like '${SECRET.slice(0, 3)}%') | no secret
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
    );
    expect(a.result?.status).toBe('succeeded');
    expect(a.result?.counts.rejected).toBe(0);
    await expectBobUntouched();
  });

  it('cannot change role', async () => {
    for (const [i, expr] of [
      `set_config('role', '${superuser}', false) is not null`,
      `(select set_config('role', '${superuser}', false)) is not null`,
      `set_config('session_authorization', '${superuser}', false) is not null`,
    ].entries()) {
      const a = await attempt(
        `check_setrole_${i}`,
        `${HEADER}-- check: ${expr} and (select count(*) from app.products where tenant_id = 'bob') = 0 | x
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
      );
      expect(failed(a), expr).toBe(true);
      expect(a.text).not.toContain(SECRET);
      // The pool's connections must not have been left as another role either.
      const { rows } = await db.pool.query('select current_user as u');
      expect(rows[0].u).toBe(superuser);
      await expectBobUntouched();
    }
  });

  it('a message with quotes and statements is only a message', async () => {
    const a = await attempt(
      'check_message',
      `${HEADER}-- check: price < 0.15 | '); drop table app.products; -- $pgferry_x$ %s %I
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
    );
    expect(a.result?.status).toBe('succeeded');
    expect(a.result?.reasons.map((r) => r.example)).toContain(`'); drop table app.products; -- $pgferry_x$ %s %I`);
    await expectBobUntouched();
  });

  it('an expression that closes its parentheses and starts statements is refused', async () => {
    const a = await attempt(
      'check_escape_drop',
      `${HEADER}-- check: true)); drop table app.products; select ((true | x
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
    );
    expect(failed(a)).toBe(true);
    await expectBobUntouched();
  });

  it("an expression cannot `reset role` and write bob's rows as the loader", async () => {
    const a = await attempt(
      'check_escape_reset_role',
      `${HEADER}-- check: true)); reset role; update app.products set name = name || ' pwned by check' where tenant_id = 'bob'; select ((true
select s.sku as sku, s.name as name, s.price as price
from staged s
`,
    );
    void a;
    await expectBobUntouched();
  });
});

describe('the tenant role itself', () => {
  /** Runs fn as acme's role on a superuser session (SET ROLE), in a rolled-back transaction. */
  async function asAcme<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    return db.withClient(async (client) => {
      await client.query('begin');
      try {
        return await fn(client);
      } finally {
        await client.query('rollback');
      }
    }, acmeRole);
  }

  it('has no BYPASSRLS, no LOGIN, no superuser, and does not inherit a role that has them', async () => {
    const { rows } = await db.pool.query(
      `select r.rolname from pg_roles r
       where pg_has_role($1, r.oid, 'usage') and (r.rolsuper or r.rolbypassrls or r.rolcanlogin or r.rolcreaterole or r.rolcreatedb)`,
      [acmeRole],
    );
    expect(rows).toEqual([]);
    const { rows: owned } = await db.pool.query(
      `select c.relname from pg_class c where pg_has_role($1, c.relowner, 'usage') and c.relnamespace = 'app'::regnamespace`,
      [acmeRole],
    );
    expect(owned).toEqual([]);
  });

  for (const [label, probe] of Object.entries(rlsProbes())) {
    it(`as superuser + SET ROLE: ${label}`, async () => {
      await asAcme((c) => probe(c));
      await expectBobUntouched();
    });
  }

  it('an application policy TO public USING (true) does not widen the tenant role', async () => {
    await db.pool.query(
      `create policy app_everyone on app.products as permissive for all to public using (true) with check (true)`,
    );
    try {
      for (const probe of Object.values(rlsProbes())) await asAcme((c) => probe(c));
    } finally {
      await db.pool.query('drop policy app_everyone on app.products');
    }
    await expectBobUntouched();
  });

  it('a restrictive policy exists for every tenant role on every protected table', async () => {
    const { rows } = await db.pool.query(
      `select t.slug, p.schema_name, p.table_name
       from ferry.tenants t cross join ferry.protected_tables p
       where not exists (
         select from pg_policy pol
         where pol.polrelid = format('%I.%I', p.schema_name, p.table_name)::regclass
           and not pol.polpermissive
           and pol.polroles = array[(select oid from pg_roles where rolname = t.role_name)]::oid[]
       )`,
    );
    expect(rows).toEqual([]);
  });
});

describe('as a non-superuser login', () => {
  let probe: pg.Client;
  let app: pg.Client;
  let probeRole: string;
  let appRole: string;

  beforeAll(async () => {
    const suffix = randomBytes(4).toString('hex');
    probeRole = `probe_${suffix}`;
    appRole = `app_login_${suffix}`;
    const password = randomBytes(12).toString('hex');
    // probe: may become a tenant role (as a loader or a DBA investigating would), nothing else.
    await createRoleAsMember(
      db.pool,
      probeRole,
      `login password '${password}' nosuperuser nobypassrls noinherit nocreaterole nocreatedb`,
    );
    await db.pool.query(`grant ${acmeRole} to ${probeRole}`);
    // app_login: what an application's own login would have on its table.
    await createRoleAsMember(
      db.pool,
      appRole,
      `login password '${password}' nosuperuser nobypassrls nocreaterole nocreatedb`,
    );
    await db.pool.query(`grant usage on schema app to ${appRole}`);
    await db.pool.query(`grant select, insert, update, delete on app.products to ${appRole}`);
    await db.pool.query(
      `create policy app_login_all on app.products for all to ${appRole} using (true) with check (true)`,
    );

    const connect = async (user: string) => {
      const url = new URL(db.url);
      url.username = user;
      url.password = password;
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      return client;
    };
    probe = await connect(probeRole);
    app = await connect(appRole);
    return async () => {
      await probe.end();
      await app.end();
      await db.pool.query(`drop policy app_login_all on app.products`);
      await db.pool.query(`drop owned by ${probeRole}, ${appRole}`);
      await db.pool.query(`drop role ${probeRole}`);
      await db.pool.query(`drop role ${appRole}`);
    };
  });

  it('the login really is an ordinary role', async () => {
    const { rows } = await probe.query(
      `select r.rolsuper, r.rolbypassrls from pg_roles r where r.rolname = current_user`,
    );
    expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false });
    // Without becoming the tenant it has no access to the table at all.
    await expect(probe.query('select count(*) from app.products')).rejects.toThrow(/permission denied/);
  });

  for (const [label, fn] of Object.entries(rlsProbes())) {
    it(`login + SET ROLE tenant: ${label}`, async () => {
      await probe.query('begin');
      try {
        await probe.query(`set local role ${acmeRole}`);
        await fn(probe);
      } finally {
        await probe.query('rollback');
      }
      await expectBobUntouched();
    });
  }

  it("the application's own login still sees every tenant (it is not confined by pgferry)", async () => {
    const { rows } = await app.query(`select tenant_id, count(*)::int as n from app.products group by 1 order by 1`);
    expect(rows).toEqual([
      { tenant_id: 'acme', n: 1 },
      { tenant_id: 'bob', n: 2 },
    ]);
  });
});

/**
 * What acme's role must not be able to do to bob's rows. Each probe throws on failure; probes
 * that expect an error run under a savepoint so the transaction continues.
 */
function rlsProbes(): Record<string, (c: pg.ClientBase) => Promise<void>> {
  const denied = async (c: pg.ClientBase, sql: string, pattern: RegExp) => {
    await c.query('savepoint probe');
    try {
      await expect(c.query(sql)).rejects.toThrow(pattern);
    } finally {
      await c.query('rollback to savepoint probe');
    }
  };
  return {
    "sees only acme's rows": async (c) => {
      const { rows } = await c.query(`select tenant_id, sku from app.products order by sku`);
      expect(rows).toEqual([{ tenant_id: 'acme', sku: 'A1' }]);
      const { rows: bob } = await c.query(`select count(*)::int as n from app.products where tenant_id = 'bob'`);
      expect(bob[0].n).toBe(0);
    },
    "cannot update or delete bob's rows": async (c) => {
      expect((await c.query(`update app.products set name = 'x' where tenant_id = 'bob'`)).rowCount).toBe(0);
      expect((await c.query(`update app.products set name = 'x' where sku like 'B%'`)).rowCount).toBe(0);
      expect((await c.query(`delete from app.products where tenant_id = 'bob'`)).rowCount).toBe(0);
      expect((await c.query(`delete from app.products where tenant_id <> 'acme'`)).rowCount).toBe(0);
    },
    'cannot insert a row for bob, nor move its own row to bob': async (c) => {
      await denied(
        c,
        `insert into app.products (tenant_id, sku, name, price) values ('bob', 'X1', 'x', 1)`,
        /row-level security/,
      );
      await denied(c, `update app.products set tenant_id = 'bob' where sku = 'A1'`, /row-level security/);
      await denied(
        c,
        `insert into app.products (tenant_id, sku, name, price) values ('acme', 'A1', 'x', 1)
         on conflict (tenant_id, sku) do update set tenant_id = 'bob'`,
        /row-level security/,
      );
      await denied(
        c,
        `merge into app.products t using (select 'bob' as tenant_id, 'B1' as sku) s
         on t.tenant_id = s.tenant_id and t.sku = s.sku
         when matched then update set name = 'x'
         when not matched then insert (tenant_id, sku, name, price) values (s.tenant_id, s.sku, 'x', 1)`,
        /row-level security/,
      );
    },
    'cannot turn row security off or copy the table out': async (c) => {
      await c.query('savepoint rs');
      await c.query('set local row_security = off');
      await expect(c.query('select count(*) from app.products')).rejects.toThrow(/row-level security/);
      await c.query('rollback to savepoint rs');
      // COPY of a table under RLS copies what the policies let through: acme's one row.
      expect((await c.query('copy app.products to stdout')).rowCount).toBe(1);
      await denied(c, 'alter table app.products disable row level security', /must be owner/);
      await denied(c, 'drop policy pgferry_tenant_bob on app.products', /must be owner/);
      await denied(c, `create policy mine on app.products for all using (true)`, /must be owner/);
    },
    'cannot read the ferry catalog or bob’s schema': async (c) => {
      for (const t of [
        'ferry.tenants',
        'ferry.loads',
        'ferry.rejects',
        'ferry.undo',
        'ferry.audit',
        'ferry.mappings',
      ]) {
        await denied(c, `select * from ${t}`, /permission denied/);
      }
      await denied(c, `select ferry.add_tenant('eve')`, /permission denied/);
      await denied(c, `select * from ferry_t_bob.stage_1`, /permission denied/);
      await denied(c, `create table ferry_t_bob.mine (x int)`, /permission denied/);
      await denied(c, `create table app.mine (x int)`, /permission denied/);
    },
    'arbitrary settings do not widen access': async (c) => {
      await c.query(`select set_config('app.tenant', 'bob', true), set_config('app.tenant_id', 'bob', true)`);
      const { rows } = await c.query(`select count(*)::int as n from app.products where tenant_id <> 'acme'`);
      expect(rows[0].n).toBe(0);
    },
    "non-leakproof functions and casts never see bob's rows": async (c) => {
      // RLS quals run before the query's own non-leakproof quals (security barrier).
      const notices: string[] = [];
      const onNotice = (n: { message?: string }) => notices.push(n.message ?? '');
      (c as pg.Client).on('notice', onNotice);
      try {
        await c.query(`
          create function pg_temp.leak(t text) returns boolean language plpgsql cost 0.0000001 as $$
          begin raise notice 'saw %', t; return true; end $$`);
        await c.query(`select * from app.products where pg_temp.leak(name)`);
        await c.query(`select * from app.products where pg_temp.leak(name) and tenant_id = 'bob'`);
        await c.query('savepoint casting');
        await c.query(`select * from app.products where tenant_id = 'bob' and name::int > 0`).catch((e: Error) => {
          notices.push(e.message);
        });
        await c.query(`select * from app.products where name::int > 0`).catch(() => {});
        await c.query('rollback to savepoint casting');
      } finally {
        (c as pg.Client).off('notice', onNotice);
      }
      expect(notices.join('\n')).not.toContain(SECRET);
    },
    'statistics of the table do not show bob’s values': async (c) => {
      const { rows } = await c.query(
        `select coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '') as v
         from pg_stats where schemaname = 'app' and tablename = 'products'`,
      );
      expect(JSON.stringify(rows)).not.toContain(SECRET);
    },
  };
}
