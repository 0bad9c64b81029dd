// Identifier safety: hostile CSV headers, tenant names, tenant keys and mapping headers.
// Whatever the input, it must either load as data or be refused with a clear PgferryError;
// it must never run as SQL, never create half a tenant, and app.products must survive.
import { beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { load } from '../src/load/load.js';
import { stagedColumnNames } from '../src/sources/staged-column-names.js';
import { addTenant, listTenants } from '../src/tenants.js';
import { productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

const HEADER = '-- target: app.products\n-- key: sku\n';

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'bob']);
  await db.pool.query(`insert into app.products (tenant_id, sku, name, price) values ('bob', 'B1', 'Bob one', 1)`);
  // Tables the header payloads name: they must all survive.
  await db.pool.query(`create table public.x (id int); create table public."Robert" (id int)`);
});

async function expectSurvivors(): Promise<void> {
  const { rows } = await db.pool.query(
    `select to_regclass('app.products') is not null as products,
            to_regclass('public.x') is not null as x,
            to_regclass('public."Robert"') is not null as robert,
            (select count(*)::int from app.products where tenant_id = 'bob') as bob_rows`,
  );
  expect(rows[0]).toEqual({ products: true, x: true, robert: true, bob_rows: 1 });
}

/** Quotes a CSV field. */
const q = (s: string) => `"${s.replaceAll('"', '""')}"`;

describe('hostile CSV headers', () => {
  const long = 'L'.repeat(200);
  const headers = [
    'sku',
    '"; DROP TABLE x; --',
    "Robert'); DROP TABLE app.products;--",
    '',
    'sku',
    long,
    `${'L'.repeat(63)}ZZ`, // same first 63 bytes as `long` once cut
    'a"b',
    '%I',
    '$1',
    'multi\nline',
    '_line',
    'name',
    'price',
    '$pgferry_0123456789ab$',
    '*/ ) as m; drop table x; /*',
    'é'.repeat(40), // 80 bytes: cut on a character boundary
  ];
  const staged = stagedColumnNames(headers);

  it('staged names are unique, at most 63 bytes, never empty and never _line', () => {
    expect(new Set(staged).size).toBe(staged.length);
    for (const name of staged) {
      expect(name).not.toBe('');
      expect(name).not.toBe('_line');
      expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    }
    expect(staged.slice(0, 5)).toEqual([
      'sku',
      '"; DROP TABLE x; --',
      "Robert'); DROP TABLE app.products;--",
      'col_4',
      'sku_2',
    ]);
    expect(staged[5]).toBe('L'.repeat(63));
    expect(staged[6]).toBe(`${'L'.repeat(61)}_2`);
    expect(staged[11]).toBe('_line_2');
    expect(staged[16]).toBe('é'.repeat(31));
  });

  it('stage safely, and a mapping can read every column by its de-duplicated name', async () => {
    const values = headers.map((_, i) => `v${i}`);
    values[0] = 'IGNORED';
    values[4] = 'H1';
    values[13] = '3.50';
    const values2 = [...values];
    values2[4] = 'H2';
    values2[13] = '-1'; // violates the table's CHECK: a promotion reject carrying the raw row
    const file = writeFile(
      dir,
      'headers.csv',
      `${headers.map(q).join(',')}\n${values.map(q).join(',')}\n${values2.map(q).join(',')}\n`,
    );
    const cols = staged.map((c) => `s.${q(c)}`);
    const mapping = writeFile(
      dir,
      'hostile_headers.sql',
      `${HEADER}select s."sku_2" as sku,
       concat_ws('|', ${cols.filter((_, i) => ![0, 4, 13].includes(i)).join(', ')}) as name,
       s.price as price
from staged s
`,
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping, keepStaging: true, force: true });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 2, staged: 2, inserted: 1, rejected: 1 });

    const { rows } = await db.pool.query(
      `select sku, name, price::text from app.products where tenant_id = 'acme' and sku like 'H%'`,
    );
    const expected = values.filter((_, i) => ![0, 4, 13].includes(i)).join('|');
    expect(rows).toEqual([{ sku: 'H1', name: expected, price: '3.50' }]);

    // The staging table's columns are exactly the staged names.
    const { rows: cat } = await db.pool.query(`select columns, staging_schema from ferry.loads where id = $1`, [
      result.loadId,
    ]);
    expect(cat[0].columns).toEqual(staged);
    const { rows: attrs } = await db.pool.query(
      `select array_agg(attname::text order by attnum) as names from pg_attribute
       where attrelid = format('%I.%I', $1::text, 'stage_' || $2)::regclass and attnum > 0`,
      [cat[0].staging_schema, result.loadId],
    );
    expect(attrs[0].names).toEqual(['_line', ...staged]);

    // The rejected row's raw keeps the hostile names as JSON keys.
    const { rows: rejects } = await db.pool.query(
      `select raw from ferry.rejects where load_id = $1 and step = 'promote'`,
      [result.loadId],
    );
    expect(rejects).toHaveLength(1);
    expect(Object.keys(JSON.parse(rejects[0].raw)).sort()).toEqual([...staged].sort());
    await db.pool.query('select ferry.cleanup_load($1)', [result.loadId]);
    await expectSurvivors();
  });

  it('headers that collide with generated names are still told apart', async () => {
    const file = writeFile(dir, 'collide.csv', 'sku,sku,sku_2,,col_4,name,price\nK1,K2,K3,K4,K5,n,1\n');
    expect(stagedColumnNames(['sku', 'sku', 'sku_2', '', 'col_4', 'name', 'price'])).toEqual([
      'sku',
      'sku_2',
      'sku_2_2',
      'col_4',
      'col_4_2',
      'name',
      'price',
    ]);
    const mapping = writeFile(
      dir,
      'collide.sql',
      `${HEADER}select s.sku_2 as sku, concat_ws('|', s.sku, s.sku_2_2, s.col_4, s.col_4_2) as name, s.price as price\nfrom staged s\n`,
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping, force: true });
    expect(result.status).toBe('succeeded');
    const { rows } = await db.pool.query(`select name from app.products where tenant_id = 'acme' and sku = 'K2'`);
    expect(rows).toEqual([{ name: 'K1|K3|K4|K5' }]);
    await expectSurvivors();
  });

  it('headers named like system columns (xmin, ctid, tableoid) stage safely', async () => {
    // A weather file with xmin/xmax columns is ordinary data.
    const file = writeFile(dir, 'system.csv', 'sku,xmin,xmax,ctid,tableoid,cmin,name,price\nS1,1,2,3,4,5,n,1\n');
    const mapping = writeFile(
      dir,
      'system_cols.sql',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
    );
    let outcome: unknown;
    try {
      outcome = await load(db.pool, { file, tenant: 'acme', mapping, force: true });
    } catch (error) {
      outcome = error;
    }
    expect(outcome instanceof Error ? outcome.message : outcome).toMatchObject({ status: 'succeeded' });
    await expectSurvivors();
  });

  it('a header line of only hostile empties and NULs still stages', async () => {
    const file = writeFile(dir, 'empties.csv', `,\0,"",sku,name,price\na,b,c,E1,n,1\n`);
    const mapping = writeFile(
      dir,
      'empties.sql',
      `${HEADER}select s.sku as sku, concat_ws('|', s.col_1, s.col_2, s.col_3) as name, s.price as price\nfrom staged s\n`,
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping, force: true });
    expect(result.status).toBe('succeeded');
    const { rows } = await db.pool.query(`select name from app.products where tenant_id = 'acme' and sku = 'E1'`);
    expect(rows).toEqual([{ name: 'a|b|c' }]);
    await expectSurvivors();
  });
});

describe('hostile delimiters', () => {
  for (const delimiter of ["'", '\\', ';', '"', '\n']) {
    it(`delimiter ${JSON.stringify(delimiter)} loads or is refused cleanly`, async () => {
      const d = delimiter;
      const file = writeFile(dir, 'delim.csv', `sku${d}name${d}price\nD1${d}Delim${d}1\n`);
      const mapping = writeFile(
        dir,
        'delim.sql',
        `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      );
      let outcome: string;
      try {
        const result = await load(db.pool, { file, tenant: 'acme', mapping, delimiter, force: true });
        outcome = result.status;
      } catch (error) {
        expect(error).toBeInstanceOf(PgferryError);
        outcome = 'refused';
      }
      expect(['succeeded', 'refused']).toContain(outcome);
      await expectSurvivors();
    });
  }
});

describe('hostile tenant names', () => {
  const hostile = [
    'Acme',
    'a-b',
    'a;drop',
    "a'); drop table app.products; --",
    'a"b',
    'a b',
    ' acme',
    'acme ',
    'acme\n',
    '\nacme',
    'a'.repeat(41),
    '',
    'ácme',
    'acmé',
    'аcme', // Cyrillic а
    '1acme',
    '_acme',
    'a$b',
    'a\0b',
  ];

  async function footprint() {
    const { rows } = await db.pool.query(
      `select (select count(*)::int from pg_roles) as roles,
              (select count(*)::int from pg_namespace) as schemas,
              (select count(*)::int from ferry.tenants) as tenants,
              (select count(*)::int from pg_policy) as policies`,
    );
    return rows[0];
  }

  for (const slug of hostile) {
    it(`refuses ${JSON.stringify(slug)} with a clear error and creates nothing`, async () => {
      const before = await footprint();
      const error = await addTenant(db.pool, slug).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(PgferryError);
      // NUL cannot even reach the server; every other name is named in a one-line message.
      if (!slug.includes('\0')) expect((error as Error).message).toMatch(/invalid tenant name/);
      expect(await footprint()).toEqual(before);
      await expectSurvivors();
    });
  }

  it('accepts the longest valid name (40 characters) and builds its names from it', async () => {
    const slug = `z${'9'.repeat(38)}_`;
    const tenant = await addTenant(db.pool, slug);
    expect(tenant.schemaName).toBe(`ferry_t_${slug}`);
    expect(tenant.roleName).toMatch(new RegExp(`^pgf_[0-9a-f]{6}_${slug}$`));
    const { rows } = await db.pool.query(`select count(*)::int as n from pg_policy where polname in ($1, $2)`, [
      `pgferry_tenant_${slug}`,
      `pgferry_only_${slug}`,
    ]);
    expect(rows[0].n).toBe(2);
  });

  it('refuses a second tenant with the same name', async () => {
    await expect(addTenant(db.pool, 'acme')).rejects.toThrow(/already exists/);
  });

  it('stores a hostile tenant key as data', async () => {
    const key = `x'); drop table app.products; -- $$ %I`;
    const tenant = await addTenant(db.pool, 'quoty', key);
    expect(tenant.tenantKey).toBe(key);
    const file = writeFile(dir, 'quoty.csv', 'sku,name,price\nQ1,Quote,1\n');
    const mapping = writeFile(
      dir,
      'quoty.sql',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
    );
    const result = await load(db.pool, { file, tenant: 'quoty', mapping, force: true });
    expect(result.status).toBe('succeeded');
    const { rows } = await db.pool.query(`select tenant_id from app.products where sku = 'Q1'`);
    expect(rows).toEqual([{ tenant_id: key }]);
    await expectSurvivors();
  });

  it("refuses a tenant whose key is another tenant's key (it would share that tenant's rows)", async () => {
    // tenant 'bob' writes tenant_id = 'bob'; a tenant 'mallory' keyed 'bob' would read and
    // overwrite bob's rows through policies that are, to PostgreSQL, perfectly valid.
    const error = await addTenant(db.pool, 'mallory', 'bob').then(
      () => undefined,
      (e: unknown) => e,
    );
    const tenants = await listTenants(db.pool);
    const mallory = tenants.find((t) => t.slug === 'mallory');
    if (mallory) {
      // Show what the hole gives: bob's rows, as mallory's role.
      const seen = await db.withClient(
        async (c) => (await c.query(`select count(*)::int as n from app.products where tenant_id = 'bob'`)).rows[0].n,
        mallory.roleName,
      );
      expect({ error, mallory_sees_bob_rows: seen }).toEqual({
        error: expect.any(PgferryError),
        mallory_sees_bob_rows: 0,
      });
    }
    expect(error).toBeInstanceOf(PgferryError);
    await expectSurvivors();
  });
});

describe('hostile mapping files', () => {
  const file = () => writeFile(dir, 'plain.csv', 'sku,name,price\nP1,Plain,1\n');

  const cases: [string, string][] = [
    [
      'target_injection',
      `-- target: app.products; drop table public.x\n-- key: sku\nselect s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
    [
      'target_unqualified',
      `-- target: products\n-- key: sku\nselect s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
    ['target_catalog', `-- target: ferry.tenants\n-- key: slug\nselect s.sku as slug from staged s\n`],
    ['target_unprotected', `-- target: public.x\n-- key: id\nselect 1 as id from staged s\n`],
    [
      'key_injection',
      `-- target: app.products\n-- key: sku; drop table public.x\nselect s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
    [
      'key_quote',
      `-- target: app.products\n-- key: "sku"")); drop table public.x; --"\nselect s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
    [
      'conflict_injection',
      `-- target: app.products\n-- key: sku\n-- on_conflict: newer:updated_at; drop table public.x\nselect s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
    ['not_a_select', `-- target: app.products\n-- key: sku\ndrop table public.x\n`],
    [
      'insert_body',
      `-- target: app.products\n-- key: sku\ninsert into app.products values ('bob', 'Z', 'z', 1) returning sku\n`,
    ],
    [
      'output_quoted_name',
      `-- target: app.products\n-- key: sku\nselect s.sku as sku, s.name as "name"")); drop table public.x; --", s.price as price from staged s\n`,
    ],
    [
      'with_dml',
      `-- target: app.products\n-- key: sku\nwith gone as (delete from app.products returning *) select s.sku as sku, s.name as name, s.price as price from staged s\n`,
    ],
  ];
  for (const [name, text] of cases) {
    it(`${name}: refused as a PgferryError, nothing runs`, async () => {
      const mapping = writeFile(dir, `${name}.sql`, text);
      await expect(load(db.pool, { file: file(), tenant: 'acme', mapping, force: true })).rejects.toBeInstanceOf(
        PgferryError,
      );
      await expectSurvivors();
    });
  }

  it('refuses mapping names that are not plain file names', async () => {
    for (const name of ["a'b", 'a;b', '../../etc/passwd', '$(touch x)', 'a b']) {
      await expect(
        load(db.pool, { file: file(), tenant: 'acme', mapping: name, mappingsDir: dir }),
      ).rejects.toBeInstanceOf(PgferryError);
    }
  });

  it('refuses an unknown or hostile tenant on load without registering anything', async () => {
    const mapping = writeFile(
      dir,
      'plain.sql',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price from staged s\n`,
    );
    const { rows: before } = await db.pool.query('select count(*)::int as n from ferry.loads');
    for (const tenant of ["acme'; drop table app.products; --", 'ACME', 'nobody', '']) {
      await expect(load(db.pool, { file: file(), tenant, mapping, force: true })).rejects.toThrow(/unknown tenant/);
    }
    const { rows: after } = await db.pool.query('select count(*)::int as n from ferry.loads');
    expect(after[0].n).toBe(before[0].n);
    await expectSurvivors();
  });
});
