import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
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

describe('load, edge files', () => {
  it('a file with only its header loads nothing and succeeds', async () => {
    const file = writeFile(dir, 'header-only.csv', 'sku,name,price\n');
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 0, staged: 0, inserted: 0 });
  });

  it('an empty file, or a header that is not valid in the encoding, is an input error naming the file, line and column', async () => {
    const empty = writeFile(dir, 'empty.csv', '');
    await expect(
      load(db.pool, { file: empty, tenant: 'acme', mapping: 'products', mappingsDir: dir }),
    ).rejects.toMatchObject({
      message: 'the file is empty: no header line',
      location: { file: empty, line: 1 },
    });
    // Read as UTF-8 (a Latin-1 file is detected as such when not told otherwise).
    const latin1 = writeFile(dir, 'latin1.csv', Buffer.from('sku,na\xe9me,price\nA,b,1\n', 'latin1'));
    await expect(
      load(db.pool, { file: latin1, tenant: 'acme', mapping: 'products', mappingsDir: dir, encoding: 'utf-8' }),
    ).rejects.toMatchObject({
      message: 'header field 2 is not valid UTF-8 (the file was read as UTF-8; --encoding names another)',
      location: { file: latin1, line: 1, column: 2 },
    });
  });
});
