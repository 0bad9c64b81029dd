// pgferry tenant remove: a tenant without rows goes (schema, role, records), in one
// transaction; a tenant with rows is refused and nothing changes (purge deletes rows).
import { beforeAll, describe, expect, it } from 'vitest';

import { productsTable } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url };
  await productsTable(db.pool, ['keeper', 'mistake']);
  await db.pool.query(`insert into app.products (tenant_id, sku, name, price) values ('keeper', 'K1', 'kept', 1)`);
});

const tenantRow = async (slug: string) =>
  (await db.pool.query('select schema_name, role_name from ferry.tenants where slug = $1', [slug])).rows[0];
const roleExists = async (role: string) =>
  (await db.pool.query('select 1 from pg_roles where rolname = $1', [role])).rowCount === 1;

describe('pgferry tenant remove', () => {
  it('refuses a tenant with rows, naming them, and changes nothing', async () => {
    const before = await tenantRow('keeper');
    const run = await runCli(['tenant', 'remove', 'keeper'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^pgferry: tenant keeper has rows \(app\.products: 1\): nothing was removed$/m);
    expect(run.stderr).toMatch(/hint: pgferry tenant purge keeper/);
    expect(await tenantRow('keeper')).toEqual(before);
    expect(await roleExists(before.role_name)).toBe(true);
    const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'keeper'`);
    expect(rows[0].n).toBe(1);
  });

  it('removes a tenant without rows: its schema, role and records', async () => {
    const { schema_name: schema, role_name: role } = await tenantRow('mistake');
    const run = await runCli(['tenant', 'remove', 'mistake'], { env });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^tenant mistake removed \(schema .*, role .* dropped\)$/m);
    expect(await tenantRow('mistake')).toBeUndefined();
    expect(await roleExists(role)).toBe(false);
    const { rows } = await db.pool.query('select 1 from pg_namespace where nspname = $1', [schema]);
    expect(rows).toHaveLength(0);
    expect(await tenantRow('keeper')).toBeDefined();
  });
});
