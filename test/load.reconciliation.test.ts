import { readFileSync } from 'node:fs';

import { beforeAll, describe, expect, it } from 'vitest';

import { DEMO_FILES } from '../src/demo.js';
import { load } from '../src/load/load.js';
import type { LoadResult } from '../src/load/types.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let result: LoadResult;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(readFileSync(DEMO_FILES.table, 'utf8'));
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.products');
  result = await load(db.pool, {
    file: DEMO_FILES.csv,
    tenant: 'acme',
    mapping: DEMO_FILES.mapping,
    keepStaging: true,
    batchSize: 700,
  });
});

describe('every input row is accounted for (the shipped dirty catalog)', () => {
  it('the counts reconcile', () => {
    const c = result.counts;
    expect(result.status).toBe('succeeded');
    expect(c.read).toBe(10_000);
    expect(c.read).toBe(c.staged + c.unparseable);
    expect(c.staged).toBe(c.inserted + c.updated + c.unchanged + c.duplicates + c.rejected);
    expect(c.unparseable).toBe(2);
    expect(c.rejected).toBeGreaterThan(200);
    expect(c.duplicates).toBeGreaterThan(50);
  });

  it('each record of the file is promoted, superseded or rejected: exactly one of them', async () => {
    const tenantSchema = (await db.pool.query(`select schema_name from ferry.tenants where slug = 'acme'`)).rows[0]
      .schema_name;
    const { rows } = await db.pool.query(
      `with promoted as (
         select _line as line, 'promoted' as fate from ${tenantSchema}.work_${result.loadId} as w
         where not exists (select from ferry.rejects r where r.load_id = $1 and r.step = 'promote' and r.line = w._line)
       ),
       rejected as (
         select distinct line, 'rejected' as fate from ferry.rejects where load_id = $1
         union all
         select line, 'duplicate' from ferry.duplicate_lines($1)
       ),
       fates as (select * from promoted union all select * from rejected)
       select count(*)::int as records, count(distinct line)::int as lines,
              count(*) filter (where fate = 'promoted')::int as promoted
       from fates`,
      [result.loadId],
    );
    expect(rows[0].records).toBe(10_000);
    expect(rows[0].lines).toBe(10_000);
    expect(rows[0].promoted).toBe(result.counts.inserted);
    const target = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'acme'`);
    expect(target.rows[0].n).toBe(result.counts.inserted);
  });

  it('the broken quote and the extra column cost one line each, with their line numbers', async () => {
    const { rows } = await db.pool.query(
      `select line::int, rule from ferry.rejects where load_id = $1 and step = 'parse' order by line`,
      [result.loadId],
    );
    const lines = readFileSync(DEMO_FILES.csv, 'utf8').split('\n');
    expect(rows.map((r) => r.rule).sort()).toEqual(['column_count', 'unclosed_quote']);
    // Physical line numbers: the file has quoted fields spanning lines before these.
    const byRule = Object.fromEntries(rows.map((r) => [r.rule, lines[r.line - 1]]));
    expect(byRule.column_count).toMatch(/,EXTRA$/);
    expect(byRule.unclosed_quote).toMatch(/^SUP-107777,"/);
  });
});
