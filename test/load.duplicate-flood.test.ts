import { crc32, deflateRawSync, gzipSync } from 'node:zlib';

import { beforeAll, describe, expect, it } from 'vitest';

import { listRejects } from '../src/catalog.js';
import { load } from '../src/load/load.js';
import { writeRejectsCsv } from '../src/report/write-rejects-csv.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

// A few kilobytes of gzip once wrote gigabytes into the catalog: each of a flood of identical
// lines became a wide `duplicate` reject row. Superseded lines now cost a row per key, a
// duplicate threshold can stop the load, and data that expands like a bomb stops staging.

let db: TestDatabase;
let dir: string;

const LINES = 200_000;
/** 200k identical lines under a header: about 2 MB of text, a few kilobytes gzipped. */
const flood = (): Buffer => gzipSync('sku,name,price\n' + 'A,same,1\n'.repeat(LINES), { level: 9 });

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'beta']);
  productsMapping(dir);
});

async function catalogBytes(): Promise<number> {
  const { rows } = await db.pool.query<{ bytes: string }>(
    `select pg_total_relation_size('ferry.rejects') + pg_total_relation_size('ferry.duplicates') as bytes`,
  );
  return Number(rows[0].bytes);
}

async function productRows(tenant: string): Promise<number> {
  const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = $1`, [tenant]);
  return rows[0].n;
}

describe('a flood of identical lines', () => {
  it('--max-duplicates: the load fails with the reason and promotes nothing', async () => {
    const file = writeFile(dir, 'flood-limited.csv.gz', flood());
    const result = await load(db.pool, {
      file,
      tenant: 'beta',
      mapping: 'products',
      mappingsDir: dir,
      maxDuplicates: 1000,
    });
    expect(result.status).toBe('failed');
    expect(result.error).toBe(
      `${LINES - 1} rows superseded by a duplicate key, more than --max-duplicates 1000: nothing was promoted`,
    );
    expect(result.counts).toMatchObject({ read: LINES, staged: LINES, duplicates: LINES - 1, inserted: 0 });
    expect(await productRows('beta')).toBe(0);
  });

  it('--max-duplicate-rate: the same, as a share of the rows read', async () => {
    const file = writeFile(dir, 'dups.csv', 'sku,name,price\nA,a,1\nA,b,2\nB,c,3\nC,d,4\n');
    const over = await load(db.pool, {
      file,
      tenant: 'beta',
      mapping: 'products',
      mappingsDir: dir,
      maxDuplicateRate: 0.2,
    });
    expect(over.status).toBe('failed');
    expect(over.error).toMatch(
      /^25\.00% of rows superseded by a duplicate key, more than --max-duplicate-rate 20\.00%/,
    );
    expect(await productRows('beta')).toBe(0);
    const within = await load(db.pool, {
      file,
      tenant: 'beta',
      mapping: 'products',
      mappingsDir: dir,
      maxDuplicateRate: 0.25,
      maxDuplicates: 1,
      force: true,
    });
    expect(within.status).toBe('succeeded');
    expect(within.counts).toMatchObject({ duplicates: 1, inserted: 3 });
  });

  it('loads with a bounded catalog, exact counts, and every superseded line still listed', async () => {
    const file = writeFile(dir, 'flood.csv.gz', flood());
    const before = await catalogBytes();
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({
      read: LINES,
      staged: LINES,
      unparseable: 0,
      rejected: 0,
      duplicates: LINES - 1,
      inserted: 1,
    });
    expect(await productRows('acme')).toBe(1);
    // A reject row each took about 250 bytes: 200k of them some 50 MB. A row per key now.
    const grown = (await catalogBytes()) - before;
    expect(grown).toBeLessThan(5 * 1024 * 1024);
    const { rows } = await db.pool.query(
      `select count(*)::int as n from ferry.rejects where load_id = $1
       union all select count(*)::int from ferry.duplicates where load_id = $1`,
      [result.loadId],
    );
    expect(rows.map((r) => r.n)).toEqual([0, 1]);

    // Every superseded line, one by one (what `pgferry rejects --json` prints): lines 2 to
    // 200000, the last (200001) kept.
    const rejects = await listRejects(db.pool, result.loadId!);
    expect(rejects).toHaveLength(LINES - 1);
    expect(rejects[0]).toMatchObject({
      line: 2,
      where: 'line 2',
      step: 'transform',
      rule: 'duplicate',
      value: '{"sku": "A"}',
      message: `key appears on ${LINES} lines; line ${LINES + 1} wins (duplicates: last)`,
    });
    expect(rejects.at(-1)!.line).toBe(LINES);
    expect(new Set(rejects.map((r) => r.line)).size).toBe(LINES - 1);

    const env = { DATABASE_URL: db.url };
    const shown = await runCli(['rejects', String(result.loadId), '-n', '3'], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/line 2\s+duplicate\s+\{"sku": "A"\}\s+key appears on 200000 lines; line 200001 wins/);
    expect(shown.stdout).toMatch(/line 4\s+duplicate/);
    // The CSV is for lines to fix and load again: a superseded line is not one of them.
    expect(await writeRejectsCsv(db.pool, result.loadId!, `${dir}/rejects.csv`)).toEqual({ rows: 0 });
  });

  it('duplicates: first keeps the first line; the others are listed as superseded by it', async () => {
    productsMapping(dir, { duplicates: 'first' }, 'products_first');
    const file = writeFile(dir, 'first.csv', 'sku,name,price\nA,a,1\nB,b,2\nA,c,3\nA,d,4\n');
    const result = await load(db.pool, {
      file,
      tenant: 'beta',
      mapping: 'products_first',
      mappingsDir: dir,
      force: true,
    });
    expect(result.counts).toMatchObject({ staged: 4, duplicates: 2, rejected: 0 });
    expect(result.counts.inserted + result.counts.updated + result.counts.unchanged).toBe(2);
    const { rows } = await db.pool.query(`select line, kept_line, message from ferry.duplicate_lines($1)`, [
      result.loadId,
    ]);
    expect(rows).toEqual([
      { line: '4', kept_line: '2', message: 'key appears on 3 lines; line 2 wins (duplicates: first)' },
      { line: '5', kept_line: '2', message: 'key appears on 3 lines; line 2 wins (duplicates: first)' },
    ]);
    // A load compiled before ferry.duplicates kept a reject row per superseded line: still read.
    await db.pool.query(
      `insert into ferry.rejects (load_id, step, line, value, rule, message, raw)
       values ($1, 'transform', 3, '{"sku": "B"}', 'duplicate', 'an older load''s', '{"sku": "B"}')`,
      [result.loadId],
    );
    const { rows: counted } = await db.pool.query(`select ferry.duplicate_count($1)::int as n`, [result.loadId]);
    expect(counted[0].n).toBe(3);
    expect((await listRejects(db.pool, result.loadId!)).map((r) => [r.line, r.rule, r.raw])).toEqual([
      [3, 'duplicate', '{"sku": "B"}'],
      [4, 'duplicate', null],
      [5, 'duplicate', null],
    ]);
  });
});

describe('a decompression bomb', () => {
  // 16 MB of identical lines, gzipped about 1000:1. The ratio is checked after 1 MB here (after
  // 1 GiB by default) so that the test stops early.
  const BOMB = Buffer.from('sku,name,price\n' + '0,0,0\n'.repeat((16 * 1024 * 1024) / 6));

  it('gzip: staging stops with a one-line error naming the file, the ratio and the option; nothing promoted', async () => {
    const file = writeFile(dir, 'bomb.csv.gz', gzipSync(BOMB, { level: 9 }));
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      expansionCheckedAfter: 1024 * 1024,
    });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(
      /^\/.*\/bomb\.csv\.gz: the gzip data expands \d+:1 \([\d.]+ MB from [\d.]+ KB\), more than --max-expansion 200: stopped, as a possible decompression bomb; raise --max-expansion if the file is honest$/,
    );
    const { rows } = await db.pool.query(`select status from ferry.loads where id = $1`, [result.loadId]);
    expect(rows).toEqual([{ status: 'failed' }]);
    const { rows: left } = await db.pool.query(
      `select count(*)::int as n from pg_tables where schemaname like 'ferry_t_%' and tablename like '%\\_' || $1`,
      [result.loadId],
    );
    expect(left[0].n).toBe(0);
    expect(await productRows('acme')).toBe(1);
  });

  it('zip: the entry says how far it expands, so it stops before a byte is staged', async () => {
    const file = writeFile(dir, 'bomb.zip', zipOf('bomb.csv', BOMB));
    await expect(
      load(db.pool, {
        file,
        tenant: 'acme',
        mapping: 'products',
        mappingsDir: dir,
        expansionCheckedAfter: 1024 * 1024,
      }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/^the zip data expands \d+:1 .* more than --max-expansion 200: stopped/),
      location: { file },
    });
  });

  it('xlsx: a workbook whose own zip inflates like a bomb (its shared strings) stops as a gzip or zip would', async () => {
    const strings = '<si><t>0</t></si>'.repeat((16 * 1024 * 1024) / 17);
    const workbook = zipOfEntries([
      [
        'xl/workbook.xml',
        Buffer.from(
          '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        ),
      ],
      [
        'xl/sharedStrings.xml',
        Buffer.from(`<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">${strings}</sst>`),
      ],
    ]);
    const file = writeFile(dir, 'bomb.xlsx', workbook);
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      expansionCheckedAfter: 1024 * 1024,
    }).catch((error: Error) => ({ status: 'thrown', error: error.message }));
    expect(result.error).toMatch(/the zip data expands \d+:1 .* more than --max-expansion 200: stopped/);
    expect(await productRows('acme')).toBe(1);
  });

  it('a higher --max-expansion lets an honest but repetitive file through', async () => {
    const file = writeFile(dir, 'repetitive.csv.gz', gzipSync('sku,name,price\n' + 'B,same,2\n'.repeat(200_000)));
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      expansionCheckedAfter: 1024 * 1024,
      maxExpansion: 5000,
    });
    expect(result.status).toBe('succeeded');
  });
});

/** A zip archive of one deflated entry (what `zip` writes, without extras). */
function zipOf(name: string, data: Buffer): Buffer {
  return zipOfEntries([[name, data]]);
}

/** A zip archive of deflated entries, in the order given. */
function zipOfEntries(entries: [name: string, data: Buffer][]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const deflated = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const fileName = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(deflated.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(fileName.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(deflated.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(fileName.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, fileName, deflated);
    centrals.push(central, fileName);
    offset += local.length + fileName.length + deflated.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}
