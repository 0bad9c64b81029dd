import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

/** A catalog of `rows` lines of about 100 bytes, with quoted fields and embedded newlines. */
async function writeCatalog(rows: number): Promise<string> {
  const file = path.join(dir, `catalog-${rows}.csv`);
  const out = createWriteStream(file);
  out.write('sku,name,price,description\n');
  for (let i = 1; i <= rows; i++) {
    const description =
      i % 50 === 0 ? `"line one, with comma\nline two ${i}"` : `"plain description number ${i}, padded"`;
    if (!out.write(`SKU-${i},Product number ${i},${(i % 1000) + 0.99},${description}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return file;
}

async function measure(file: string) {
  const { stdout } = await promisify(execFile)(process.execPath, [
    path.resolve('test/helpers/measure-load.mjs'),
    db.url,
    file,
    'acme',
    path.join(dir, 'products.sql'),
  ]);
  return JSON.parse(stdout) as { maxRssKb: number; peakHeap: number; status: string; counts: Record<string, number> };
}

describe('client memory while staging', () => {
  it('stays flat: a 200,000-row file needs no more memory than a 20,000-row one', async () => {
    const small = await measure(await writeCatalog(20_000));
    const huge = process.env.MEASURE_HUGE
      ? await measure(await writeCatalog(Number(process.env.MEASURE_HUGE)))
      : undefined;
    if (huge) console.log(`peak RSS ${process.env.MEASURE_HUGE} rows: ${Math.round(huge.maxRssKb / 1024)} MB`);
    const large = await measure(await writeCatalog(200_000));
    expect(small.status).toBe('succeeded');
    expect(large.status).toBe('succeeded');
    expect(large.counts).toMatchObject({ read: 200_000, staged: 200_000, rejected: 0 });
    expect(large.counts.inserted + large.counts.unchanged).toBe(200_000);
    console.log(
      `peak RSS: 20k rows ${Math.round(small.maxRssKb / 1024)} MB, 200k rows ${Math.round(large.maxRssKb / 1024)} MB; ` +
        `peak heap: ${Math.round(small.peakHeap / 1e6)} MB vs ${Math.round(large.peakHeap / 1e6)} MB`,
    );
    // Ten times the rows, the same memory give or take allocator noise (1M rows measured: 119 MB).
    expect(large.maxRssKb - small.maxRssKb).toBeLessThan(40 * 1024);
    expect(large.maxRssKb).toBeLessThan(150 * 1024);
  }, 180_000);
});
