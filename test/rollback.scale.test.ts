// pgferry rollback at scale (issue 23): a fresh tenant's load rolled back beside another
// tenant's analysed rows. The statistics take the fresh tenant for a row or two; a plan that
// trusts them joins its rows to the undo rows in a nested loop, reading all of them again for
// every undo row. The rollback's plans must stay linear in the rows it undoes, whatever the
// statistics: asserted on the plans it actually ran (auto_explain), not on wall time.
import pg from 'pg';
import { beforeAll, describe, expect, inject, it } from 'vitest';

import { load } from '../src/load/load.js';
import { rollback } from '../src/rollback.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { databaseUrl } from './global-setup.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const OTHER_ROWS = 50_000;
const UPDATES = 5_000;
const INSERTS = 20_000;

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['other', 'fresh']);
  await db.pool.query(
    `insert into app.products (tenant_id, sku, name, price)
     select 'other', 'S' || lpad(i::text, 8, '0'), 'other ' || i, i % 100 from generate_series(1, $1) i`,
    [OTHER_ROWS],
  );
  await db.pool.query('analyze app.products');
});

/** A CSV of skus S00000000.. (the other tenant's keys too), named `name` and priced `price`. */
function csv(file: string, rows: number, name: string, price: number): string {
  const lines = ['sku,name,price'];
  for (let i = 0; i < rows; i++) lines.push(`S${String(i).padStart(8, '0')},${name} ${i},${price}`);
  return writeFile(dir, file, lines.join('\n') + '\n');
}

async function loadFile(file: string, tenant: string, mapping: string): Promise<number> {
  const result = await load(db.pool, { file, tenant, mapping, force: true });
  expect(result.error).toBeUndefined();
  expect(result.status).toBe('succeeded');
  return result.loadId!;
}

/** A digest of a tenant's rows of a table, to compare before and after. */
async function digest(table: string, tenant: string): Promise<{ rows: number; md5: string }> {
  const { rows } = await db.pool.query(
    `select count(*)::int as rows, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as md5
     from ${table} t where tenant_id = $1`,
    [tenant],
  );
  return rows[0];
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}

/**
 * Rolls back a load through the library, as the test role, on a connection that logs every
 * plan the rollback runs (auto_explain, nested statements included, with actual rows): the
 * plans of the statements that touched `table`. Loading auto_explain needs a superuser; the
 * rollback itself runs as the test role (SET ROLE).
 */
async function rollbackExplained(loadId: number, table: string) {
  const plans: { query: string; plan: PlanNode }[] = [];
  const pool = new pg.Pool({ connectionString: databaseUrl(inject('superuserUrl'), db.name), max: 1 });
  pool.on('connect', (client) => {
    client.on('notice', (notice) => {
      const match = /^duration: [\d.]+ ms\s+plan:\s*([\s\S]*)$/.exec(notice.message ?? '');
      if (!match) return;
      const explained = JSON.parse(match[1]) as { 'Query Text': string; Plan: PlanNode };
      plans.push({ query: explained['Query Text'], plan: explained.Plan });
    });
  });
  try {
    await pool.query(`load 'auto_explain';
      set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on;
      set auto_explain.log_timing = off; set auto_explain.log_nested_statements = on;
      set auto_explain.log_format = json; set client_min_messages = log;
      set role ${(await db.pool.query('select current_user as u')).rows[0].u}`);
    const result = await rollback(pool, loadId);
    return {
      result,
      plans: plans.filter((p) => p.query.includes(table) && /^\s*(select|delete|update|insert)/i.test(p.query)),
    };
  } finally {
    await pool.end();
  }
}

/** Every node of a plan. */
function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/** The rows a plan looked at: produced, or read and thrown away by a filter, over all loops. */
function rowsLookedAt(plan: PlanNode): number {
  return nodes(plan).reduce(
    (sum, n) =>
      sum +
      ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Join Filter'] ?? 0)) *
        (n['Actual Loops'] ?? 1),
    0,
  );
}

describe('pgferry rollback at scale', () => {
  it('undoes a fresh tenant’s load beside another’s analysed rows with plans linear in the rows it undoes (auto_explain needs a superuser)', async () => {
    const mapping = productsMapping(dir);
    await loadFile(csv('first.csv', UPDATES, 'first', 1), 'fresh', mapping);
    const before = await digest('app.products', 'fresh');
    const other = await digest('app.products', 'other');
    const second = await loadFile(csv('second.csv', UPDATES + INSERTS, 'second', 2), 'fresh', mapping);
    expect((await digest('app.products', 'fresh')).rows).toBe(UPDATES + INSERTS);

    const { result, plans } = await rollbackExplained(second, 'app.products');
    expect(result).toMatchObject({ outcome: 'rolled_back', deleted: INSERTS, restored: UPDATES, conflicts: [] });
    expect(await digest('app.products', 'fresh')).toEqual(before);
    expect(await digest('app.products', 'other')).toEqual(other);

    // The lookup pass, the delete and the update, at least.
    expect(plans.length).toBeGreaterThanOrEqual(3);
    const undone = UPDATES + INSERTS;
    for (const { query, plan } of plans) {
      // Quadratic: each undo row against each of the tenant's rows, 25,000² = 625,000,000.
      // Linear: a few rows looked at for each undo row.
      expect(rowsLookedAt(plan), query).toBeLessThan(8 * undone);
      // The target is reached by key or by ctid, never read whole.
      const scans = nodes(plan).filter((n) => n['Relation Name'] === 'products' && n['Node Type'] !== 'ModifyTable');
      for (const n of scans) {
        expect(['Index Scan', 'Index Only Scan', 'Tid Scan'], query).toContain(n['Node Type']);
      }
    }
  });

  it('without an index on the key, joins the undo rows to the target in one pass, not a nested loop (auto_explain needs a superuser)', async () => {
    await db.pool.query(`create table app.unindexed (tenant_id text not null, sku text not null, name text not null)`);
    await addTenant(db.pool, 'plain');
    await protectTable(db.pool, 'app.unindexed');
    await db.pool.query(
      `insert into app.unindexed select 'other', 'S' || lpad(i::text, 8, '0'), 'other' from generate_series(1, 20000) i`,
    );
    await db.pool.query('analyze app.unindexed');
    const mapping = writeFile(
      dir,
      'unindexed.sql',
      '-- target: app.unindexed\n-- key: sku\nselect s.sku as sku, s.name as name from staged s\n',
    );
    await loadFile(csv('u1.csv', 1_000, 'first', 1), 'plain', mapping);
    const before = await digest('app.unindexed', 'plain');
    const second = await loadFile(csv('u2.csv', 3_000, 'second', 2), 'plain', mapping);

    const { result, plans } = await rollbackExplained(second, 'app.unindexed');
    expect(result).toMatchObject({ outcome: 'rolled_back', deleted: 2_000, restored: 1_000 });
    expect(await digest('app.unindexed', 'plain')).toEqual(before);
    for (const { query, plan } of plans) {
      // One pass over the target (20,000 + 3,000 rows) and the undo rows, not 3,000 × 3,000.
      expect(rowsLookedAt(plan), query).toBeLessThan(100_000);
    }
  });
});
