import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

const DIRTY = 'sku,name,price\nA,a,1\nB,b,oops\nC,c,3\nD,d,-4\nE,e,5\n'; // 2 of 5 rejected

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir, { check: 'price >= 0 | price must not be negative' });
});

async function stagingTables(): Promise<number> {
  const { rows } = await db.pool.query(`select count(*)::int as n from pg_tables where schemaname like 'ferry_t_%'`);
  return rows[0].n;
}

describe('reject thresholds', () => {
  it('--max-rejects exceeded: nothing promoted, load failed with the reason, rejects kept', async () => {
    const file = writeFile(dir, 'dirty.csv', DIRTY);
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, maxRejects: 1 });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/2 rows rejected, more than --max-rejects 1/);
    expect(result.counts).toMatchObject({ read: 5, staged: 5, rejected: 2, inserted: 0 });
    expect((await db.pool.query('select count(*)::int as n from app.products')).rows[0].n).toBe(0);
    const { rows } = await db.pool.query(`select status, error from ferry.loads where id = $1`, [result.loadId]);
    expect(rows[0].status).toBe('failed');
    expect(
      (await db.pool.query(`select count(*)::int as n from ferry.rejects where load_id = $1`, [result.loadId])).rows[0]
        .n,
    ).toBe(2);
    expect(await stagingTables()).toBe(0);
  });

  it('--max-reject-rate exceeded: nothing promoted', async () => {
    const file = writeFile(dir, 'dirty2.csv', DIRTY);
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      maxRejectRate: 0.3,
    });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/40\.00% of rows rejected/);
    expect((await db.pool.query('select count(*)::int as n from app.products')).rows[0].n).toBe(0);
  });

  it('within the threshold the load succeeds', async () => {
    const file = writeFile(dir, 'dirty3.csv', DIRTY);
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      maxRejects: 2,
      maxRejectRate: 0.4,
    });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ inserted: 3, rejected: 2 });
  });

  it('rejects found only while promoting also count, and roll the whole promotion back', async () => {
    await db.pool.query('truncate app.products');
    await db.pool.query('create unique index products_name on app.products (tenant_id, name)');
    try {
      const file = writeFile(dir, 'promote-dirty.csv', 'sku,name,price\nA,same,1\nB,same,2\nC,other,3\n');
      const result = await load(db.pool, {
        file,
        tenant: 'acme',
        mapping: 'products',
        mappingsDir: dir,
        maxRejects: 0,
        batchSize: 10,
      });
      expect(result.status).toBe('failed');
      expect((await db.pool.query('select count(*)::int as n from app.products')).rows[0].n).toBe(0);
      const { rows } = await db.pool.query(`select rule from ferry.rejects where load_id = $1`, [result.loadId]);
      expect(rows).toEqual([{ rule: 'unique' }]);
      expect(
        (await db.pool.query(`select count(*)::int as n from ferry.undo where load_id = $1`, [result.loadId])).rows[0]
          .n,
      ).toBe(0);
    } finally {
      await db.pool.query('drop index app.products_name');
    }
  });
});

describe('--dry-run', () => {
  it('reports what would happen and leaves no trace', async () => {
    await db.pool.query('truncate app.products');
    await db.pool.query(
      `insert into app.products (tenant_id, sku, name, price) values ('acme', 'A', 'a', 1), ('acme', 'C', 'old', 3)`,
    );
    const loadsBefore = (await db.pool.query('select count(*)::int as n from ferry.loads')).rows[0].n;
    const file = writeFile(dir, 'dry.csv', DIRTY);
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, dryRun: true });
    expect(result.status).toBe('dry_run');
    expect(result.counts).toMatchObject({ read: 5, staged: 5, inserted: 1, updated: 1, unchanged: 1, rejected: 2 });
    expect(result.reasons.map((r) => r.rule).sort()).toEqual(['check', 'type']);
    const { rows } = await db.pool.query('select sku, name from app.products order by sku');
    expect(rows).toEqual([
      { sku: 'A', name: 'a' },
      { sku: 'C', name: 'old' },
    ]);
    expect((await db.pool.query('select count(*)::int as n from ferry.loads')).rows[0].n).toBe(loadsBefore);
    expect(
      (await db.pool.query('select count(*)::int as n from ferry.rejects where load_id = $1', [result.loadId])).rows[0]
        .n,
    ).toBe(0);
    expect(await stagingTables()).toBe(0);
    const compiled = await db.pool.query(
      `select count(*)::int as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname like 'ferry_t_%' and p.proname like '%\\_' || $1`,
      [result.loadId],
    );
    expect(compiled.rows[0].n).toBe(0);
  });

  it('leaves no staging tables even with --keep-staging', async () => {
    const file = writeFile(dir, 'dry2.csv', DIRTY);
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      dryRun: true,
      keepStaging: true,
    });
    expect(result.status).toBe('dry_run');
    expect(await stagingTables()).toBe(0);
  });
});

describe('idempotent files', () => {
  it('skips a file already loaded for the tenant and mapping; --force loads it again', async () => {
    await db.pool.query('truncate app.products');
    const file = writeFile(dir, 'once.csv', 'sku,name,price\nX,x,1\n');
    const first = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(first.status).toBe('succeeded');
    const copy = writeFile(dir, 'once-renamed.csv', 'sku,name,price\nX,x,1\n');
    const second = await load(db.pool, { file: copy, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(second).toMatchObject({ status: 'skipped', previousLoadId: first.loadId });
    const forced = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, force: true });
    expect(forced.status).toBe('succeeded');
    expect(forced.counts).toMatchObject({ unchanged: 1, inserted: 0 });
  });

  it('a changed mapping (a new version) loads the file again', async () => {
    const file = writeFile(dir, 'versioned.csv', 'sku,name,price\nV,v,1\n');
    const first = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(first.status).toBe('succeeded');
    const changed = productsMapping(tempDir(), {
      check: 'price >= 0 | price must not be negative',
      duplicates: 'first',
    });
    const second = await load(db.pool, { file, tenant: 'acme', mapping: changed });
    expect(second.status).toBe('succeeded');
    expect(second.mapping.version).toBe(first.mapping.version! + 1);
  });

  it('a failed load does not count as loaded', async () => {
    const file = writeFile(dir, 'fails.csv', 'sku,name,price\nY,y,bad\n');
    const failed = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, maxRejects: 0 });
    expect(failed.status).toBe('failed');
    const again = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, maxRejects: 0 });
    expect(again.status).toBe('failed');
  });
});
