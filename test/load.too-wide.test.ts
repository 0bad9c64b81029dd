// A file wider than a staging table can be is refused before anything is registered, naming
// the file and its column count, not blamed on the mapping.
import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let wide: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
  const names = ['sku', 'name', 'price', ...Array.from({ length: 4997 }, (_, i) => `extra_${i}`)];
  wide = writeFile(dir, 'wide.csv', `${names.join(',')}\n${names.map((_, i) => i).join(',')}\n`);
});

describe('a 5,000-column file', () => {
  it('is refused naming the file and its column count; nothing is registered', async () => {
    await expect(load(db.pool, { file: wide, tenant: 'acme', mapping: 'products', mappingsDir: dir })).rejects.toThrow(
      'the file has 5000 columns; pgferry can stage at most 1599 (a PostgreSQL table holds at most 1600, and staging adds the line number)',
    );
    const { rows } = await db.pool.query('select count(*)::int as n from ferry.loads');
    expect(rows[0].n).toBe(0);
  });

  it('pgferry load prints one line naming the file, and exits 2', async () => {
    const run = await runCli(['load', wide, '-t', 'acme', '-m', 'products', '--mappings-dir', dir], {
      env: { DATABASE_URL: db.url },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${wide}: the file has 5000 columns; pgferry can stage at most 1599`);
    expect(run.stderr).not.toMatch(/products\.sql|\n\s+at /);
  });
});
