import { beforeAll, describe, expect, it } from 'vitest';

import { LINE_COLUMN, MAX_IDENTIFIER_BYTES, stagedColumnNames } from '../src/sources/staged-column-names.js';
import { prng } from './helpers/prng.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** What every result must satisfy, whatever the headers. */
function expectSafe(headers: string[], names: string[]): void {
  expect(names).toHaveLength(headers.length);
  expect(new Set(names).size).toBe(names.length);
  for (const name of names) {
    expect(name).not.toBe('');
    expect(name).not.toBe(LINE_COLUMN);
    expect(name.includes('\0')).toBe(false);
    expect(bytes(name)).toBeLessThanOrEqual(MAX_IDENTIFIER_BYTES);
    // Cut on a character boundary: no replacement character appears that was not there.
    expect(Buffer.from(name, 'utf8').toString('utf8')).toBe(name);
  }
}

describe('stagedColumnNames', () => {
  it('keeps names verbatim: case, blanks, punctuation and SQL are no concern of a quoted identifier', () => {
    const headers = [
      'SKU',
      'sku',
      'Item Name',
      ' padded ',
      '"; DROP TABLE x; --',
      "O'Brien",
      'a.b',
      'ünïcødé',
      '😀',
      '$1',
      '%I',
    ];
    expect(stagedColumnNames(headers)).toEqual(headers);
  });

  it('names empty headers col_<position>', () => {
    expect(stagedColumnNames(['sku', '', 'sku'])).toEqual(['sku', 'col_2', 'sku_2']);
    expect(stagedColumnNames(['', '', ''])).toEqual(['col_1', 'col_2', 'col_3']);
    // A NUL cannot be in an identifier: it is dropped, and a header of NULs alone is empty.
    expect(stagedColumnNames(['a\0b', '\0\0'])).toEqual(['ab', 'col_2']);
  });

  it('suffixes repeats _2, _3 … and steps around names already taken', () => {
    expect(stagedColumnNames(['a', 'a', 'a'])).toEqual(['a', 'a_2', 'a_3']);
    expect(stagedColumnNames(['a', 'a_2', 'a'])).toEqual(['a', 'a_2', 'a_3']);
    expect(stagedColumnNames(['a', 'a', 'a_2'])).toEqual(['a', 'a_2', 'a_2_2']);
    expect(stagedColumnNames(['col_2', ''])).toEqual(['col_2', 'col_2_2']);
    expect(stagedColumnNames(['', 'col_1'])).toEqual(['col_1', 'col_1_2']);
  });

  it('never uses _line, the staging table’s own column', () => {
    expect(stagedColumnNames(['_line'])).toEqual(['_line_2']);
    expect(stagedColumnNames(['_line', '_line', '_line_2'])).toEqual(['_line_2', '_line_3', '_line_2_2']);
    // Other cases are other identifiers.
    expect(stagedColumnNames(['_LINE', '_line '])).toEqual(['_LINE', '_line ']);
  });

  it('cuts long names to 63 bytes', () => {
    const long = 'x'.repeat(100);
    expect(stagedColumnNames([long])).toEqual(['x'.repeat(63)]);
    expect(stagedColumnNames(['y'.repeat(63)])).toEqual(['y'.repeat(63)]);
    expect(stagedColumnNames(['y'.repeat(64)])).toEqual(['y'.repeat(63)]);
  });

  it('cuts multibyte names on a character boundary', () => {
    // é is 2 bytes: 31 fit (62 bytes), the 32nd would make 64.
    expect(stagedColumnNames(['é'.repeat(40)])).toEqual(['é'.repeat(31)]);
    // € is 3 bytes: 21 fit exactly.
    expect(stagedColumnNames(['€'.repeat(30)])).toEqual(['€'.repeat(21)]);
    // 😀 is 4 bytes (2 UTF-16 units): 15 fit (60 bytes), never half a surrogate pair.
    expect(stagedColumnNames(['😀'.repeat(20)])).toEqual(['😀'.repeat(15)]);
    expect(stagedColumnNames(['a' + '😀'.repeat(20)])).toEqual(['a' + '😀'.repeat(15)]);
  });

  it('makes names that collide only after cutting unique, still within 63 bytes', () => {
    const a = 'a'.repeat(70);
    const names = stagedColumnNames([`${a}X`, `${a}Y`, `${a}Z`]);
    expect(names).toEqual(['a'.repeat(63), `${'a'.repeat(61)}_2`, `${'a'.repeat(61)}_3`]);
    const e = 'é'.repeat(40);
    expect(stagedColumnNames([`${e}1`, `${e}2`])).toEqual(['é'.repeat(31), `${'é'.repeat(30)}_2`]);
    const many = stagedColumnNames(Array.from({ length: 12 }, () => 'b'.repeat(80)));
    expect(many[8]).toBe(`${'b'.repeat(61)}_9`);
    expect(many[9]).toBe(`${'b'.repeat(60)}_10`);
    expect(many[11]).toBe(`${'b'.repeat(60)}_12`);
    expectSafe(
      Array.from({ length: 12 }, () => ''),
      many,
    );
  });

  it('always gives unique, non-empty, short names (random hostile headers)', () => {
    const rand = prng(11);
    const pieces = [
      'a',
      'A',
      '_',
      '_line',
      'col_',
      '1',
      '2',
      '_2',
      '',
      ' ',
      '"',
      "'",
      ';',
      '\0',
      'é',
      '€',
      '😀',
      'x'.repeat(30),
    ];
    for (let n = 0; n < 500; n++) {
      const headers = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => {
        let s = '';
        for (let k = Math.floor(rand() * 5); k > 0; k--) s += pieces[Math.floor(rand() * pieces.length)];
        return s;
      });
      const names = stagedColumnNames(headers);
      expectSafe(headers, names);
      // A name that is usable as it is and seen first is kept as it is.
      const seen = new Set<string>([LINE_COLUMN]);
      headers.forEach((h, i) => {
        if (h !== '' && !h.includes('\0') && bytes(h) <= 63 && !seen.has(h) && !names.slice(0, i).includes(h)) {
          expect(names[i]).toBe(h);
        }
        seen.add(h);
      });
    }
  });

  it('gives names PostgreSQL stores unchanged (no silent truncation, no clash with _line)', async () => {
    const headers = [
      '"; DROP TABLE x; --',
      '',
      'x'.repeat(100),
      'x'.repeat(101),
      'é'.repeat(40),
      'é'.repeat(40) + '!',
      '😀'.repeat(20),
      '_line',
      'Mixed Case',
      'mixed case',
      ' ',
      'a\0b',
    ];
    const names = stagedColumnNames(headers);
    expectSafe(headers, names);
    const client = await db.pool.connect();
    try {
      const cols = names.map((n) => `${client.escapeIdentifier(n)} text`).join(', ');
      await client.query(`create temp table staged_names (_line bigint, ${cols})`);
      const { rows } = await client.query<{ attname: string }>(
        `select attname from pg_attribute where attrelid = 'staged_names'::regclass and attnum > 0 order by attnum`,
      );
      expect(rows.map((r) => r.attname)).toEqual([LINE_COLUMN, ...names]);
    } finally {
      client.release();
    }
  });
});
