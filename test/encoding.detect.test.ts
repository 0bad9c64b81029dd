import { readFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { describeSource } from '../src/report/load-summary.js';
import { detectEncoding } from '../src/sources/detect/detect-encoding.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const FIXTURES = path.resolve('test/fixtures/formats');

/** A UTF-8 CSV of `café` lines, with one Latin-1 byte (0xE9) in line 17, well inside the 64 KiB sample. */
function oneBadByteCsv(): Buffer {
  const parts: Buffer[] = [Buffer.from('sku,name,price\n')];
  for (let i = 2; i <= 400; i++) {
    if (i === 17) parts.push(Buffer.concat([Buffer.from(`S${i},caf`), Buffer.from([0xe9]), Buffer.from(',1\n')]));
    else parts.push(Buffer.from(`S${i},café n°${i},1\n`));
  }
  return Buffer.concat(parts);
}

describe('detectEncoding says which encoding and why', () => {
  it('a UTF-8 sample with one invalid byte is UTF-8, naming the line of the bad byte', () => {
    expect(detectEncoding(oneBadByteCsv())).toEqual({
      encoding: 'utf-8',
      bomBytes: 0,
      reason: 'valid UTF-8 but 1 invalid byte (line 17: rejected)',
    });
  });

  it('a real Windows-1252 file is Windows-1252: its high bytes form no UTF-8 sequence', () => {
    const detected = detectEncoding(readFileSync(path.join(FIXTURES, 'catalog-windows-1252.csv')));
    expect(detected.encoding).toBe('windows-1252');
    expect(detected.reason).toMatch(/^not UTF-8: \d+ invalid bytes, 0 valid multi-byte sequences; /);
  });

  it('Windows-1252 with many accented letters stays Windows-1252 even if a few pairs happen to be valid UTF-8', () => {
    // "Ã©" in Windows-1252 is C3 A9, a valid UTF-8 sequence; the other 200 accented letters are not.
    const text = Buffer.from(`sku;name\n${'A;Crème brûlée à la Müller\n'.repeat(50)}B;Ã©\n`, 'latin1');
    expect(detectEncoding(text).encoding).toBe('windows-1252');
  });

  it('pure ASCII is UTF-8', () => {
    expect(detectEncoding(Buffer.from('sku,name\nA1,plain\n'))).toEqual({
      encoding: 'utf-8',
      bomBytes: 0,
      reason: 'ASCII only',
    });
  });

  it('UTF-8 with a byte order mark is UTF-8, the mark skipped', () => {
    expect(detectEncoding(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('sku\ncafé\n')]))).toEqual({
      encoding: 'utf-8',
      bomBytes: 3,
      reason: 'UTF-8 byte order mark',
    });
  });

  it('valid UTF-8 says so', () => {
    expect(detectEncoding(Buffer.from('sku\ncafé\n')).reason).toBe('valid UTF-8');
  });
});

describe('a one-bad-byte UTF-8 file, loaded', () => {
  let db: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = tempDir();
    await productsTable(db.pool, ['acme']);
    productsMapping(dir);
  });

  it('stores café as café and rejects only the line with the bad byte, saying why in the summary', async () => {
    const file = writeFile(dir, 'one-bad-byte.csv', oneBadByteCsv());
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 399, unparseable: 1, inserted: 398 });
    const { rows } = await db.pool.query(`select count(*)::int as n from app.products where name like 'café n°%'`);
    expect(rows[0].n).toBe(398);
    const rejects = await db.pool.query(`select line, rule, message from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rejects.rows).toEqual([
      {
        line: '17',
        rule: 'encoding',
        message:
          'invalid UTF-8 byte 0xE9 in field 2 (byte 8 of the record): the file was read as UTF-8 (--encoding names another)',
      },
    ]);
    expect(result.source).toMatchObject({
      encoding: 'utf-8',
      encodingReason: 'detected: valid UTF-8 but 1 invalid byte (line 17: rejected)',
    });
    expect(describeSource(result.source!)).toBe(
      'csv, delimiter ",", encoding utf-8 (detected: valid UTF-8 but 1 invalid byte (line 17: rejected))',
    );
  });

  it('an encoding given is said to be given', async () => {
    const file = writeFile(dir, 'given.csv', 'sku,name,price\nG1,plain,1\n');
    const result = await load(db.pool, {
      file,
      tenant: 'acme',
      mapping: 'products',
      mappingsDir: dir,
      encoding: 'windows-1252',
    });
    expect(result.source).toMatchObject({ encoding: 'windows-1252', encodingReason: 'given by --encoding' });
  });
});
