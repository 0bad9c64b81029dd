import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

describe('load', () => {
  it('loads a clean file and accounts for every row', async () => {
    const file = writeFile(dir, 'clean.csv', 'sku,name,price\nA1,Anvil,10.50\nB2,Bolt,0.25\n');
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 2, staged: 2, inserted: 2, rejected: 0, duplicates: 0 });
    const { rows } = await db.pool.query('select tenant_id, sku, name, price from app.products order by sku');
    expect(rows).toEqual([
      { tenant_id: 'acme', sku: 'A1', name: 'Anvil', price: '10.50' },
      { tenant_id: 'acme', sku: 'B2', name: 'Bolt', price: '0.25' },
    ]);
  });
});
