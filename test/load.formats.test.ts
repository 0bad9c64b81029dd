import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import ExcelJS from 'exceljs';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { listRejects } from '../src/catalog.js';
import { load } from '../src/load/load.js';
import type { LoadOptions } from '../src/load/types.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
const FIXTURES = path.resolve('test/fixtures/formats');
const fixture = (name: string) => path.join(FIXTURES, name);

const CATALOG = [
  { sku: 'A1', name: 'Crème brûlée', price: '10.50' },
  { sku: 'B2', name: 'Smörgåsbord “deluxe”', price: '0.25' },
  { sku: 'C3', name: 'Euro € sign', price: '3.00' },
];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

beforeEach(async () => {
  await db.pool.query('truncate app.products');
});

async function loadFile(file: string, options: Partial<LoadOptions> = {}) {
  return load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, force: true, ...options });
}

async function products(): Promise<unknown[]> {
  const { rows } = await db.pool.query('select sku, name, price from app.products order by sku');
  return rows;
}

describe('encodings, detected from the content', () => {
  it.each([
    ['catalog-utf8.csv', { format: 'csv', encoding: 'utf-8', delimiter: ',' }],
    ['catalog-utf8-bom.csv', { format: 'csv', encoding: 'utf-8', delimiter: ',' }],
    ['catalog-windows-1252.csv', { format: 'csv', encoding: 'windows-1252', delimiter: ';' }],
    ['catalog-utf16le-bom.tsv', { format: 'csv', encoding: 'utf-16le', delimiter: '\t' }],
    ['catalog-utf16be-bom.csv', { format: 'csv', encoding: 'utf-16be', delimiter: ',' }],
  ])('%s loads every row as written', async (name, source) => {
    const result = await loadFile(fixture(name));
    expect(result.status).toBe('succeeded');
    expect(result.source).toMatchObject({ ...source, compression: 'none' });
    expect(result.counts).toMatchObject({ read: 3, inserted: 3, unparseable: 0, rejected: 0 });
    expect(await products()).toEqual(CATALOG);
  });

  it('--encoding names what detection cannot tell apart (ISO-8859-15 from Windows-1252)', async () => {
    const result = await loadFile(fixture('catalog-iso-8859-15.csv'), { encoding: 'ISO-8859-15' });
    expect(result.source).toMatchObject({ encoding: 'iso-8859-15' });
    expect(await products()).toEqual([CATALOG[0], CATALOG[2]]);
    await expect(loadFile(fixture('catalog-utf8.csv'), { encoding: 'klingon' })).rejects.toThrow(
      'unknown encoding "klingon"',
    );
  });

  it('a byte not valid in the encoding rejects its line, and the others load', async () => {
    const result = await loadFile(fixture('catalog-windows-1252-undefined-byte.csv'));
    expect(result.source).toMatchObject({ encoding: 'windows-1252' });
    expect(result.counts).toMatchObject({ read: 3, staged: 2, unparseable: 1, inserted: 2 });
    const { rows } = await db.pool.query(`select line, rule, message from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rows).toEqual([
      {
        line: '3',
        rule: 'encoding',
        message: 'bytes not valid in windows-1252 in field 2 (character 19 of the record)',
      },
    ]);
    expect((await products()).map((r) => (r as { sku: string }).sku)).toEqual(['A1', 'C3']);
  });

  it('invalid UTF-8 in a UTF-8 file rejects its line: no replacement characters in the table', async () => {
    // Detection reads the first 64 KiB: valid UTF-8 there, a Latin-1 byte after.
    const lines = ['sku,name,price'];
    for (let i = 1; i <= 3000; i++) lines.push(`S${i},Crème n°${i},1`);
    const file = writeFile(
      dir,
      'mixed.csv',
      Buffer.concat([Buffer.from(`${lines.join('\n')}\nB2,caf`), Buffer.from([0xe9]), Buffer.from(',2\n')]),
    );
    const result = await loadFile(file);
    expect(result.source).toMatchObject({ encoding: 'utf-8' });
    expect(result.counts).toMatchObject({ read: 3001, unparseable: 1, inserted: 3000 });
    const { rows } = await db.pool.query(`select line, rule, message from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rows).toEqual([
      {
        line: '3002',
        rule: 'encoding',
        message:
          'invalid UTF-8 byte 0xE9 in field 2 (byte 7 of the record): the file was read as UTF-8 (--encoding names another)',
      },
    ]);
  });
});

describe('gzip and zip, detected from the content', () => {
  it('a gzipped CSV loads, whatever its name', async () => {
    const copy = writeFile(dir, 'no-extension', readFileSync(fixture('catalog.csv.gz')));
    const result = await loadFile(copy);
    expect(result.source).toMatchObject({ format: 'csv', compression: 'gzip' });
    expect(await products()).toEqual(CATALOG);
  });

  it('a zip holding one data file loads it (resource forks left out); two files need --entry', async () => {
    const one = await loadFile(fixture('catalog.zip'));
    expect(one.source).toMatchObject({ format: 'csv', compression: 'zip', entry: 'export/catalog.csv' });
    expect(await products()).toEqual(CATALOG);

    await expect(loadFile(fixture('two-files.zip'))).rejects.toMatchObject({
      message: 'the zip archive holds 2 files: choose one with --entry ("catalog.csv", "prices.json")',
      location: { file: fixture('two-files.zip') },
    });
    await db.pool.query('truncate app.products');
    const json = await loadFile(fixture('two-files.zip'), { entry: 'prices.json' });
    expect(json.source).toMatchObject({ format: 'json', compression: 'zip', entry: 'prices.json' });
    expect(await products()).toEqual(CATALOG);
    await expect(loadFile(fixture('two-files.zip'), { entry: 'nope.csv' })).rejects.toThrow(
      'no entry "nope.csv" in the zip archive; its files are: "catalog.csv", "prices.json"',
    );
  });

  it('a truncated gzip is an error naming the file: before the load when its header is cut, else the load fails and promotes nothing', async () => {
    await expect(loadFile(fixture('truncated.csv.gz'))).rejects.toMatchObject({
      message: 'the gzip data is truncated or corrupt (unexpected end of file)',
      location: { file: fixture('truncated.csv.gz') },
    });
    const rows = ['sku,name,price'];
    for (let i = 0; i < 200_000; i++) rows.push(`S${i},name ${i} ${(i * 7919) % 100_003},${i % 1000}.${i % 100}`);
    const whole = gzipSync(`${rows.join('\n')}\n`);
    const cut = writeFile(dir, 'cut.csv.gz', whole.subarray(0, Math.floor(whole.length * 0.6)));
    const result = await loadFile(cut);
    expect(result.status).toBe('failed');
    expect(result.error).toBe(`${cut}: the gzip data is truncated or corrupt (unexpected end of file)`);
    expect(await products()).toEqual([]);
  });

  it('a zip without its directory is an input error naming the file', async () => {
    await expect(loadFile(fixture('truncated.zip'))).rejects.toMatchObject({
      message: expect.stringMatching(/^not a readable zip archive: /),
      location: { file: fixture('truncated.zip') },
    });
  });
});

describe('JSON and NDJSON', () => {
  it('a JSON document: its first array of records, found without --records', async () => {
    const result = await loadFile(fixture('catalog.json'));
    expect(result.source).toMatchObject({ format: 'json', encoding: 'utf-8' });
    expect(result.counts).toMatchObject({ read: 3, inserted: 3 });
    expect(await products()).toEqual(CATALOG);
  });

  it.each(['catalog.ndjson', 'catalog.ndjson.gz'])('%s loads as NDJSON', async (name) => {
    const result = await loadFile(fixture(name));
    expect(result.source).toMatchObject({ format: 'ndjson' });
    expect(await products()).toEqual(CATALOG);
  });

  it('invalid JSON on line 7,000 of an NDJSON file rejects that line only, naming it', async () => {
    const lines: string[] = [];
    for (let i = 1; i <= 10_000; i++) {
      lines.push(
        i === 7000
          ? `{"sku": "S${i}", "name": "broken", "price": }`
          : JSON.stringify({ sku: `S${i}`, name: `n${i}`, price: `${i}.25` }),
      );
    }
    const file = writeFile(dir, 'big.ndjson', `${lines.join('\n')}\n`);
    const result = await loadFile(file);
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 10_000, staged: 9_999, unparseable: 1, inserted: 9_999 });
    const { rows } = await db.pool.query(`select line, rule, message from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rows).toEqual([
      { line: '7000', rule: 'malformed_json', message: 'line 7000: expected a value, found "}" (column 45)' },
    ]);
  });

  it('nested objects are staged as a.b columns, arrays as JSON text a mapping reads with jsonb', async () => {
    const file = writeFile(
      dir,
      'nested.json',
      JSON.stringify({ data: { items: [{ id: { sku: 'N1' }, label: { en: 'Nut' }, price: 1.5, tags: ['a', 'b'] }] } }),
    );
    const mapping = writeFile(
      dir,
      'nested.sql',
      `-- target: app.products
-- key: sku
select s."id.sku" as sku, s."label.en" || ' ' || (s.tags::jsonb ->> 1) as name, s.price as price
from staged s
`,
    );
    const result = await loadFile(file, { mapping, records: 'data.items' });
    expect(result.status).toBe('succeeded');
    expect(result.source).toMatchObject({ format: 'json', records: 'data.items' });
    expect(await products()).toEqual([{ sku: 'N1', name: 'Nut b', price: '1.50' }]);
  });

  it('a JSON array broken mid-way is an input error naming the line; nothing is registered', async () => {
    const file = writeFile(
      dir,
      'broken.json',
      '[\n{"sku": "A", "name": "a", "price": 1},\n{"sku": "B", "name": "b", "price": 2\n',
    );
    await expect(loadFile(file)).rejects.toMatchObject({
      message: 'the JSON ends inside a value: the file is truncated or a bracket is missing',
      location: { file, line: 3 },
    });
  });
});

describe('XML', () => {
  it('attributes, child elements and nested elements become columns; the records are found without --records', async () => {
    const mapping = writeFile(
      dir,
      'xml-products.sql',
      `-- target: app.products
-- key: sku
select s."@sku" as sku, s.name || ' (' || s."price.@currency" || ')' as name, s.price as price
from staged s
`,
    );
    const result = await loadFile(path.resolve('test/fixtures/xml/catalog.xml'), { mapping, maxRejects: 5 });
    expect(result.source).toMatchObject({ format: 'xml', encoding: 'utf-8' });
    // C-3 has no name or price: rejected by the mapping's checks, not lost.
    expect(result.counts).toMatchObject({ read: 3, staged: 3, inserted: 2, rejected: 1 });
    expect(await products()).toEqual([
      { sku: 'A-1', name: 'Desk lamp (EUR)', price: '12.50' },
      { sku: 'B-2', name: '  Chair, padded   (USD)', price: '99.00' },
    ]);
  });

  it('--records picks the repeating element; an unclosed element is an input error naming the line', async () => {
    const file = writeFile(
      dir,
      'feed.xml',
      `<?xml version="1.0"?>
<feed xmlns:g="http://base.google.com/ns/1.0">
  <title>Products</title>
  <entry><g:id>G1</g:id><title>Gear</title><g:price>5.00</g:price></entry>
  <entry><g:id>G2</g:id><title>Gasket</title><g:price>0.10</g:price></entry>
</feed>
`,
    );
    const mapping = writeFile(
      dir,
      'feed.sql',
      `-- target: app.products
-- key: sku
select s."g:id" as sku, s.title as name, s."g:price" as price
from staged s
`,
    );
    await expect(loadFile(file, { mapping })).rejects.toMatchObject({ location: { file } });
    const result = await loadFile(file, { mapping, records: '/feed/entry' });
    expect(result.source).toMatchObject({ format: 'xml', records: '/feed/entry' });
    expect(await products()).toEqual([
      { sku: 'G1', name: 'Gear', price: '5.00' },
      { sku: 'G2', name: 'Gasket', price: '0.10' },
    ]);
    const unclosed = path.resolve('test/fixtures/xml/unclosed.xml');
    await expect(loadFile(unclosed, { mapping, records: 'item' })).rejects.toMatchObject({
      message: expect.stringMatching(/^XML is not well-formed: /),
      location: { file: unclosed, line: expect.any(Number) },
    });
  });
});

describe('XLSX', () => {
  let workbook: string;

  beforeAll(async () => {
    // A title row above the header, a formula, an error cell, and a second sheet.
    const book = new ExcelJS.Workbook();
    const products = book.addWorksheet('Products');
    products.addRow(['Supplier catalog, November 2026']);
    products.addRow([]);
    products.addRow(['sku', 'name', 'price']);
    products.addRow(['X1', 'Xylophone', 12.5]);
    products.addRow(['X2', 'Xenon lamp', { formula: 'B1*0+3.25', result: 3.25 }]);
    products.addRow(['X3', 'Broken', { formula: '1/0', result: { error: '#DIV/0!' } }]);
    products.addRow(['X4', 'Negative', -1]);
    products.addRow(['X5', 'Bad price', 'abc']);
    const more = book.addWorksheet('More products');
    more.addRow(['sku', 'name', 'price']);
    more.addRow(['Y1', 'Yoke', 7]);
    workbook = path.join(dir, 'catalog.xlsx');
    await book.xlsx.writeFile(workbook);
  });

  it('finds the header below a title row, reads cached formula values, rejects error cells with their address', async () => {
    const result = await loadFile(workbook, { maxRejects: 5 });
    expect(result.source).toMatchObject({ format: 'xlsx', sheet: 'Products' });
    expect(result.counts).toMatchObject({ read: 5, staged: 4, unparseable: 1, rejected: 2, inserted: 2 });
    expect(await products()).toEqual([
      { sku: 'X1', name: 'Xylophone', price: '12.50' },
      { sku: 'X2', name: 'Xenon lamp', price: '3.25' },
    ]);
    const rejects = await listRejects(db.pool, result.loadId!);
    // A value the mapping passes through points at its cell; a table constraint at the row's
    // first cell (not `Products!7:7`, exact but read as a time).
    expect(rejects.map((r) => [r.where, r.rule])).toEqual([
      ['Products!A6', 'cell_error'],
      ['Products!A7', 'check_constraint'],
      ['Products!C8', 'type'],
    ]);
    expect(rejects[0].message).toBe('Products!C6: the cell holds the error #DIV/0!');
  });

  it('the CLI: --all-sheets loads each sheet as a load of its own; the summary says how the file was read', async () => {
    const env = { DATABASE_URL: db.url };
    const run = await runCli(
      ['load', workbook, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--all-sheets', '--max-rejects', '5'],
      { env },
    );
    expect(run.stderr).not.toMatch(/Error:|at .*\.js/);
    expect(run.code).toBe(0);
    expect(run.stdout.match(/^load \d+ succeeded/gm), run.stdout).toHaveLength(2);
    expect(run.stdout).toContain('read as: xlsx, sheet "Products"');
    expect(run.stdout).toContain('read as: xlsx, sheet "More products"');
    const loadId = /^load (\d+) succeeded/m.exec(run.stdout)![1];
    const rejects = await runCli(['rejects', loadId], { env });
    expect(rejects.stdout).toMatch(/Products!C8 +type +price/);
  });

  it('--sheet by name or position; an unknown sheet is an input error listing the sheets', async () => {
    const byName = await loadFile(workbook, { sheet: 'More products' });
    expect(byName.source).toMatchObject({ sheet: 'More products' });
    const byPosition = await loadFile(workbook, { sheet: '2' });
    expect(byPosition.source).toMatchObject({ sheet: 'More products' });
    expect(await products()).toEqual([{ sku: 'Y1', name: 'Yoke', price: '7.00' }]);
    await expect(loadFile(workbook, { sheet: 'Prices' })).rejects.toThrow(
      'no sheet "Prices" in the workbook; its sheets are: "Products", "More products"',
    );
  });
});

describe('SQL dumps', () => {
  it('a mysqldump: --table picks the table, MySQL escapes are honoured, columns come from CREATE TABLE', async () => {
    const dump = path.resolve('test/fixtures/sql/mysqldump.sql');
    await expect(loadFile(dump)).rejects.toMatchObject({
      message: expect.stringContaining('choose one with --table'),
      location: { file: dump },
    });
    const result = await loadFile(dump, { table: 'products', maxRejects: 5 });
    expect(result.source).toMatchObject({ format: 'sql', table: 'products' });
    // B-200's price is negative: the table's check rejects it.
    expect(result.counts).toMatchObject({ read: 4, staged: 4, inserted: 3, rejected: 1 });
    expect(await products()).toEqual([
      { sku: 'A-100', name: 'Hammer, 500g', price: '12.50' },
      { sku: 'C-300', name: 'Line one\nline two\ttabbed', price: '1000.00' },
      { sku: 'D-400', name: '100\\% cotton_ish \x1a', price: '0.00' },
    ]);
  });

  it('a string holding "\'),(" stays one value; pg_dump --inserts reads with standard strings', async () => {
    const dump = writeFile(
      dir,
      'export.sql',
      `-- pgferry export of app.products for tenant acme
SET standard_conforming_strings = on;
INSERT INTO "app"."products" ("sku", "name", "price") VALUES
('T1', 'it''s a trap'',''),(''x', 1.00),
('T2', 'back\\slash', 2.00);
`,
    );
    const result = await loadFile(dump);
    expect(result.source).toMatchObject({ format: 'sql' });
    expect(await products()).toEqual([
      { sku: 'T1', name: "it's a trap','),('x", price: '1.00' },
      { sku: 'T2', name: 'back\\slash', price: '2.00' },
    ]);
  });
});

describe('--format', () => {
  it('overrides detection, and an unknown format is a clear error', async () => {
    const tsv = writeFile(dir, 'data.txt', 'sku\tname\tprice\nA1\tAnvil\t1\n');
    const result = await loadFile(tsv, { format: 'tsv' });
    expect(result.source).toMatchObject({ format: 'csv', delimiter: '\t' });
    await expect(loadFile(tsv, { format: 'parquet' })).rejects.toThrow(
      '--format must be one of csv, tsv, xlsx, json, ndjson, xml, sql, not "parquet"',
    );
  });

  it('an option for another format, or a file with no records, is an input error', async () => {
    await expect(loadFile(fixture('catalog-utf8.csv'), { sheet: 'Products' })).rejects.toMatchObject({
      message: '--sheet is for xlsx files, and this one is csv',
      hint: '--format names the format when detection got it wrong',
    });
    await expect(loadFile(fixture('catalog.ndjson'), { table: 'products' })).rejects.toThrow(
      '--table is for sql files, and this one is ndjson',
    );
    const empty = writeFile(dir, 'empty.json', '[]\n');
    await expect(loadFile(empty)).rejects.toMatchObject({
      message: 'the file holds no records: nothing to load',
      location: { file: empty },
    });
  });

  it('an old binary .xls is named as such', async () => {
    const xls = writeFile(dir, 'old.xls', Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0, 0]));
    await expect(loadFile(xls)).rejects.toThrow(
      'this is an old binary Excel (.xls) or Office file: save it as .xlsx or CSV',
    );
  });
});
