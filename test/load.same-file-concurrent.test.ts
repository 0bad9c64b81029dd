// Each file once, even at once: three loads of the same file for the same tenant started
// together run one load; the others are skipped, naming it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { formatLoadResult } from '../src/report/load-summary.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let pool: pg.Pool;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  // Three loads at once, each with its steps' connections.
  pool = new pg.Pool({ connectionString: db.url, max: 12 });
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

afterAll(async () => {
  await pool?.end();
});

describe('three simultaneous loads of one file', () => {
  it('run once; the other two are skipped as loaded by that one', async () => {
    const lines = ['sku,name,price'];
    for (let i = 1; i <= 2000; i++) lines.push(`S${i},item ${i},${i}`);
    const file = writeFile(dir, 'catalog.csv', `${lines.join('\n')}\n`);
    const results = await Promise.all(
      [1, 2, 3].map(() => load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir })),
    );
    const ran = results.filter((r) => r.status === 'succeeded');
    const skipped = results.filter((r) => r.status === 'skipped');
    expect(ran).toHaveLength(1);
    expect(skipped).toHaveLength(2);
    for (const s of skipped) {
      expect(s.previousLoadId).toBe(ran[0].loadId);
      expect(formatLoadResult(s)).toMatch(
        new RegExp(`^skipped .*catalog\\.csv: this file (is being|was already) loaded .*\\(load ${ran[0].loadId}\\)`),
      );
    }
    const { rows } = await db.pool.query(`select count(*)::int as loads from ferry.loads`);
    expect(rows[0].loads).toBe(1);
    const products = await db.pool.query(`select count(*)::int as n from app.products`);
    expect(products.rows[0].n).toBe(2000);
  });

  it('a load of a file whose load was interrupted says to resume or cancel it', async () => {
    const file = writeFile(dir, 'other.csv', 'sku,name,price\nX1,x,1\n');
    const first = await load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, force: true });
    // As if its process had died while staging: in progress, and nobody's claim.
    await db.pool.query(`update ferry.loads set status = 'staging' where id = $1`, [first.loadId]);
    await expect(load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir })).rejects.toThrow(
      `load ${first.loadId} of the same file was interrupted (staging): resume it, or cancel it and load again`,
    );
    // --force loads it all the same.
    const forced = await load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, force: true });
    expect(forced.status).toBe('succeeded');
  });

  it('a load whose process died between registering it and claiming it counts as interrupted, not as loading', async () => {
    const file = writeFile(dir, 'third.csv', 'sku,name,price\nX3,x,3\n');
    const first = await load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, force: true });
    // Registered a minute ago, and nobody's claim: its process is gone.
    await db.pool.query(
      `update ferry.loads set status = 'registered', created_at = now() - interval '1 minute' where id = $1`,
      [first.loadId],
    );
    await expect(load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir })).rejects.toThrow(
      `load ${first.loadId} of the same file was interrupted (registered): resume it, or cancel it and load again`,
    );
    // Registered a moment ago: its process is about to claim it, and the file is being loaded.
    await db.pool.query(`update ferry.loads set created_at = now() where id = $1`, [first.loadId]);
    const again = await load(pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(again.status).toBe('skipped');
    expect(again.previousLoadId).toBe(first.loadId);
  });
});
