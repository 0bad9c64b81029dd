// --jobs: several COPY streams stage one file. Whatever the number of streams and the size of
// the committed chunks, the staging table, the parse rejects and the counts are the same.
import { readFileSync } from 'node:fs';

import { beforeAll, describe, expect, it } from 'vitest';

import { DEMO_FILES } from '../src/demo.js';
import { load } from '../src/load/load.js';
import type { LoadResult } from '../src/load/types.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let schema: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(readFileSync(DEMO_FILES.table, 'utf8'));
  for (const tenant of ['one', 'three', 'eight']) {
    await addTenant(db.pool, tenant);
  }
  await protectTable(db.pool, 'app.products');
});

async function loadWith(tenant: string, jobs: number): Promise<LoadResult> {
  const result = await load(db.pool, {
    file: DEMO_FILES.csv,
    tenant,
    mapping: DEMO_FILES.mapping,
    keepStaging: true,
    jobs,
    chunkRows: 1500,
  });
  schema = (await db.pool.query('select schema_name from ferry.tenants where slug = $1', [tenant])).rows[0].schema_name;
  return result;
}

/** The staged rows of a load as text, in line order. */
async function staged(result: LoadResult, tenantSchema: string): Promise<string[]> {
  const { rows } = await db.pool.query(
    `select (to_jsonb(s))::text as row from ${tenantSchema}.stage_${result.loadId} as s order by _line`,
  );
  return rows.map((r) => r.row);
}

describe('parallel staging (jobs)', () => {
  it('stages the same rows, with the same rejects and counts, with 1, 3 or 8 streams', async () => {
    const one = await loadWith('one', 1);
    const oneRows = await staged(one, schema);
    for (const [tenant, jobs] of [
      ['three', 3],
      ['eight', 8],
    ] as const) {
      const many = await loadWith(tenant, jobs);
      expect(many.status).toBe('succeeded');
      expect(many.counts).toEqual(one.counts);
      expect(await staged(many, schema)).toEqual(oneRows);
      const { rows } = await db.pool.query(
        `select a.line, a.rule, a.raw from ferry.rejects a where a.load_id = $1 and a.step = 'parse'
         except
         select b.line, b.rule, b.raw from ferry.rejects b where b.load_id = $2 and b.step = 'parse'`,
        [many.loadId, one.loadId],
      );
      expect(rows).toEqual([]);
      const { rows: checkpoints } = await db.pool.query(
        'select checkpoint_line::int as line from ferry.loads where id in ($1, $2)',
        [one.loadId, many.loadId],
      );
      expect(checkpoints[0].line).toBeGreaterThan(10_000);
      expect(checkpoints[1].line).toBe(checkpoints[0].line);
    }
    expect(oneRows).toHaveLength(one.counts.staged);
  });

  it('refuses a number of jobs outside 1-8 before registering anything', async () => {
    const before = await db.pool.query('select count(*)::int as n from ferry.loads');
    await expect(loadWith('one', 0)).rejects.toThrow(/jobs must be a whole number from 1 to 8/);
    await expect(loadWith('one', 9)).rejects.toThrow(/jobs must be a whole number from 1 to 8/);
    const after = await db.pool.query('select count(*)::int as n from ferry.loads');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });
});
