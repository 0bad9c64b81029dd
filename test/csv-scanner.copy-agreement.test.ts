import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CopyBuffer } from '../src/sources/copy-buffer.js';
import { CsvScanner, type ParseReject, splitFields } from '../src/sources/file/csv/csv-scanner.js';
import { int, pick, prng, type Rand } from './helpers/prng.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

/**
 * The scanner's promise: every record it hands on is CSV that PostgreSQL's COPY (FORMAT csv)
 * reads exactly as the scanner did, prefixed with `<line><delimiter>` as stage.ts sends it;
 * an unquoted empty field is NULL, a quoted "" the empty string. These tests send the records
 * through a real COPY and compare every value.
 */

let db: TestDatabase;
let client: pg.PoolClient;

beforeAll(async () => {
  db = await createTestDatabase();
  client = await db.pool.connect();
});

afterAll(() => {
  client?.release();
});

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type Value = string | null;

interface Scanned {
  header: string[];
  records: { line: number; raw: Buffer }[];
  rejects: ParseReject[];
}

function scanCsv(input: Buffer | string, delimiter: string, chunk = 5): Scanned {
  const bytes = typeof input === 'string' ? Buffer.from(input) : input;
  const records: Scanned['records'] = [];
  const rejects: ParseReject[] = [];
  const scanner = new CsvScanner({
    delimiter,
    onRecord: (line, raw) => records.push({ line, raw: Buffer.from(raw) }),
    onReject: (r) => rejects.push(r),
  });
  for (let i = 0; i < bytes.length; i += chunk) scanner.push(bytes.subarray(i, i + chunk));
  scanner.finish();
  return { header: scanner.header ?? [], records, rejects };
}

/**
 * What COPY (FORMAT csv, NULL '') must read from a record the scanner handed on: quoted fields
 * unquoted, an unquoted empty field NULL. The scanner re-quotes bare quotes, so an unquoted
 * field of a record handed on never holds a quote (asserted).
 */
function copyView(raw: Buffer, delimiter: string): Value[] {
  const d = delimiter.charCodeAt(0);
  const out: Value[] = [];
  let i = 0;
  for (;;) {
    if (raw[i] === 0x22) {
      const parts: Buffer[] = [];
      let j = i + 1;
      for (;;) {
        const q = raw.indexOf(0x22, j);
        if (q < 0) throw new Error(`unclosed quote in a record handed on: ${raw.toString()}`);
        parts.push(raw.subarray(j, q));
        if (raw[q + 1] === 0x22) {
          parts.push(Buffer.from('"'));
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      if (i < raw.length && raw[i] !== d)
        throw new Error(`text after a closing quote in a record handed on: ${raw.toString()}`);
      out.push(Buffer.concat(parts).toString('utf8'));
    } else {
      const e = raw.indexOf(d, i);
      const stop = e < 0 ? raw.length : e;
      const field = raw.subarray(i, stop);
      if (field.includes(0x22)) throw new Error(`bare quote in an unquoted field handed on: ${raw.toString()}`);
      if (field.includes(0x0a) || field.includes(0x0d))
        throw new Error(`unquoted line end handed on: ${raw.toString()}`);
      out.push(field.length === 0 ? null : field.toString('utf8'));
      i = stop;
    }
    if (i >= raw.length) break;
    i++;
    if (i === raw.length) {
      out.push(null);
      break;
    }
  }
  return out;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

const tables = new Set<string>();

/** A temp table `_line bigint, c1..cN text`, emptied. */
async function table(columns: number): Promise<string> {
  const name = `t${columns}`;
  if (!tables.has(name)) {
    const cols = Array.from({ length: columns }, (_, i) => `c${i + 1} text`).join(', ');
    await client.query(`create temp table ${name} (_line bigint, ${cols})`);
    tables.add(name);
  }
  await client.query(`truncate ${name}`);
  return name;
}

async function copyInto(name: string, delimiter: string, data: Buffer): Promise<void> {
  const sql = `copy ${name} from stdin with (format csv, delimiter ${quoteLiteral(delimiter)}, null '')`;
  await pipeline(Readable.from([data]), client.query(copyFrom(sql)));
}

/** COPYs records (line numbers as given) into a fresh table and returns its rows by line. */
type Row = (number | Value)[];

async function copyRecords(
  columns: number,
  delimiter: string,
  records: { line: number; raw: Buffer }[],
): Promise<Row[]> {
  if (records.length === 0) return [];
  const name = await table(columns);
  const out = new CopyBuffer(delimiter);
  for (const r of records) out.append(r.line, r.raw);
  try {
    await copyInto(name, delimiter, out.take());
  } catch (error) {
    // Find the record COPY refused, for a useful failure.
    for (const r of records) {
      const one = new CopyBuffer(delimiter);
      one.append(r.line, r.raw);
      await copyInto(name, delimiter, one.take()).catch((e: Error) => {
        throw new Error(`COPY refused line ${r.line} ${JSON.stringify(r.raw.toString('latin1'))}: ${e.message}`);
      });
    }
    throw error;
  }
  const { rows } = await client.query({ text: `select * from ${name} order by _line`, rowMode: 'array' });
  return (rows as unknown[][]).map((row) => row.map((v, i) => (i === 0 ? Number(v) : (v as Value))));
}

/** Scans, COPYs, and checks every staged value against copyView(raw) and splitFields(raw). */
async function expectCopyAgrees(input: Buffer | string, delimiter: string): Promise<Scanned> {
  const scanned = scanCsv(input, delimiter, 61);
  if (scanned.records.length === 0) return scanned;
  const columns = scanned.header.length;
  const copied = await copyRecords(columns, delimiter, scanned.records);
  const expected = scanned.records.map((r) => {
    const view = copyView(r.raw, delimiter);
    // splitFields gives the same values, with '' for both NULL and the empty string.
    expect(splitFields(r.raw, delimiter.charCodeAt(0))).toEqual(view.map((v) => v ?? ''));
    return [r.line, ...view];
  });
  expect(copied).toEqual(expected);
  return scanned;
}

// ---------------------------------------------------------------------------------------------
// Random files with known values
// ---------------------------------------------------------------------------------------------

const PIECES = [
  'a',
  'B',
  ' ',
  ',',
  ';',
  '\t',
  '|',
  '"',
  '\n',
  '\r',
  '\r\n',
  'é',
  '€',
  '😀',
  '\\',
  '\\.',
  '\\N',
  'NULL',
  "'",
  '\uFFFF',
  '\u{10FFFF}',
  'e\u0301',
  '#',
];

function genValue(rand: Rand): string {
  if (rand() < 0.15) return '';
  let s = '';
  for (let n = 1 + int(rand, 5); n > 0; n--) s += pick(rand, PIECES);
  return s;
}

interface KnownFile {
  text: string;
  columns: number;
  /** Values COPY must read, per record, in order. */
  values: Value[][];
}

/** A file whose values are known: quoted fields, plain fields, and bare quotes inside plain ones. */
function genKnownFile(rand: Rand, delimiter: string): KnownFile {
  const columns = 1 + int(rand, 5);
  const eol = pick(rand, ['\n', '\r\n', '\r']);
  const lines = [Array.from({ length: columns }, (_, i) => `h${i}`).join(delimiter)];
  const values: Value[][] = [];
  for (let r = int(rand, 10); r > 0; r--) {
    const written: string[] = [];
    const row: Value[] = [];
    for (let c = 0; c < columns; c++) {
      let value = genValue(rand);
      const special = value.includes(delimiter) || value.includes('\n') || value.includes('\r');
      const mode = special ? 'quoted' : pick(rand, ['quoted', 'plain', 'plain', 'bare']);
      if (mode === 'quoted') {
        written.push(`"${value.replaceAll('"', '""')}"`);
        row.push(value);
      } else if (mode === 'bare' || (mode === 'plain' && value.includes('"'))) {
        // A quote inside an unquoted field, never as its first character.
        value = `x${value}"${pick(rand, ['', 'y', '"'])}`;
        written.push(value);
        row.push(value);
      } else {
        written.push(value);
        row.push(value === '' ? null : value);
      }
    }
    // A lone unquoted empty value in a one-column file is a blank line: no record.
    if (columns === 1 && row[0] === null) continue;
    lines.push(written.join(delimiter));
    values.push(row);
  }
  return { text: lines.join(eol) + (rand() < 0.5 ? eol : ''), columns, values };
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('COPY reads what the scanner hands on', () => {
  it('runs against a UTF8 server over a UTF8 connection (else the encoding checks prove nothing)', async () => {
    const { rows } = await client.query('select current_setting($1) as server, current_setting($2) as client', [
      'server_encoding',
      'client_encoding',
    ]);
    expect(rows[0]).toEqual({ server: 'UTF8', client: 'UTF8' });
  });

  for (const delimiter of [',', ';', '\t', '|']) {
    const label = JSON.stringify(delimiter);

    it(`stages tricky hand-written records exactly (delimiter ${label})`, async () => {
      const d = delimiter;
      const text = [
        ['id', 'a', 'b'].join(d),
        ['1', '', '""'].join(d), // NULL, empty string
        ['2', '""""', '"a""b"'].join(d), // a lone quote, a doubled one
        ['3', '"multi\nline\r\nwith\rall ends"', '"\\.\n\\.\n"'].join(d),
        ['4', '\\.', '\\N'].join(d),
        ['5', 'NULL', '  spaced  '].join(d),
        ['6', `"has ${d} delimiter"`, `"quote "" inside"`].join(d),
        ['7', '5" screen', 'x""y'].join(d),
        ['8', '😀\uFFFF\u{10FFFF}', 'e\u0301 日本'].join(d),
        ['9', `"${'long '.repeat(20000)}"`, '"\r\n"'].join(d),
        ['10', '', ''].join(d),
        ['11', ',;|\t'.replaceAll(d, ''), '"\t"'].join(d),
        ['12', '""', '7" wide'].join(d), // a bare quote re-quoted; "" must stay an empty string
      ].join('\r\n');
      const scanned = await expectCopyAgrees(`\uFEFF${text}\r\n`, d);
      expect(scanned.rejects).toEqual([]);
      expect(scanned.records).toHaveLength(12);
      // Physical lines: record 3 spans lines 4 to 9 (LF, CRLF, CR, LF, LF inside its quotes).
      expect(scanned.records.map((r) => r.line)).toEqual([2, 3, 4, 10, 11, 12, 13, 14, 15, 17, 18, 19]);
      expect(copyView(scanned.records[11].raw, d)).toEqual(['12', '', '7" wide']);
    });

    it(`stages randomly generated files with the values written (delimiter ${label})`, async () => {
      const rand = prng(1000 + delimiter.charCodeAt(0));
      // Many files per table: one COPY per column count, lines made unique per file.
      const byColumns = new Map<number, { records: { line: number; raw: Buffer }[]; values: Row[] }>();
      for (let f = 0; f < 120; f++) {
        const file = genKnownFile(rand, delimiter);
        const scanned = scanCsv(file.text, delimiter, 1 + int(rand, 7));
        expect(scanned.rejects, file.text).toEqual([]);
        expect(scanned.records.length).toBe(file.values.length);
        const group = byColumns.get(file.columns) ?? { records: [], values: [] };
        byColumns.set(file.columns, group);
        scanned.records.forEach((r, i) => {
          const line = f * 1_000_000 + r.line;
          group.records.push({ line, raw: r.raw });
          group.values.push([line, ...file.values[i]]);
          expect(copyView(r.raw, delimiter), file.text).toEqual(file.values[i]);
        });
      }
      for (const [columns, group] of byColumns) {
        const copied = await copyRecords(columns, delimiter, group.records);
        expect(copied).toEqual(group.values);
      }
    });

    it(`never hands COPY a record it would refuse or misread, even from damaged files (delimiter ${label})`, async () => {
      const rand = prng(7 + delimiter.charCodeAt(0));
      const byColumns = new Map<number, { line: number; raw: Buffer }[]>();
      for (let f = 0; f < 150; f++) {
        const file = genKnownFile(rand, delimiter);
        let bytes = Buffer.from(file.text);
        for (let e = 1 + int(rand, 4); e > 0; e--) {
          const at = int(rand, bytes.length + 1);
          const insert = pick(rand, [
            Buffer.from('"'),
            Buffer.from(delimiter),
            Buffer.from('\n'),
            Buffer.from('\r'),
            Buffer.from([0xe9]),
            Buffer.from([0]),
            Buffer.from('\\.'),
          ]);
          bytes =
            rand() < 0.7
              ? Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)])
              : Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        }
        let scanned: Scanned;
        try {
          scanned = scanCsv(bytes, delimiter, 1 + int(rand, 9));
        } catch {
          continue; // a broken header: nothing is staged
        }
        const records = byColumns.get(scanned.header.length) ?? [];
        byColumns.set(scanned.header.length, records);
        for (const r of scanned.records) records.push({ line: f * 1_000_000 + r.line, raw: r.raw });
      }
      for (const [columns, records] of byColumns) {
        const copied = await copyRecords(columns, delimiter, records);
        expect(copied).toEqual(records.map((r) => [r.line, ...copyView(r.raw, delimiter)]));
      }
    });
  }
});

describe('COPY refuses what the scanner rejects', () => {
  // The converse: a record rejected for its field count, quoting or encoding would make COPY
  // fail (and abort the whole chunk) if it were sent.
  it('each rejected record, sent alone, makes COPY fail', async () => {
    const input = Buffer.concat([
      Buffer.from('id,a,b\n'),
      Buffer.from('1,2\n'), // too few
      Buffer.from('2,3,4,5\n'), // too many
      Buffer.from('3,"open,x\n'), // unclosed, to the end of a later line
      Buffer.from('4,ok,"fine"\n'),
      Buffer.from('5,caf'),
      Buffer.from([0xe9]),
      Buffer.from(',x\n'), // Latin-1
      Buffer.from('6,nul'),
      Buffer.from([0]),
      Buffer.from(',x\n'), // NUL
      Buffer.from('7,'),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from(',x\n'), // surrogate
      Buffer.from('8,last,"unclosed'),
    ]);
    const scanned = scanCsv(input, ',');
    expect(scanned.rejects.map((r) => [r.line, r.rule])).toEqual([
      [2, 'column_count'],
      [3, 'column_count'],
      [4, 'unclosed_quote'],
      [6, 'encoding'],
      [7, 'encoding'],
      [8, 'encoding'],
      [9, 'unclosed_quote'],
    ]);
    expect(scanned.records.map((r) => r.line)).toEqual([5]);
    const name = await table(3);
    // Raw text of encoding rejects is decoded leniently: send the original bytes instead.
    const originals = input.toString('latin1').split('\n').slice(1);
    for (const reject of scanned.rejects) {
      const raw = Buffer.from(originals[reject.line - 2], 'latin1');
      const one = new CopyBuffer(',');
      one.append(reject.line, raw);
      await expect(copyInto(name, ',', one.take()), `line ${reject.line}`).rejects.toThrow(
        /missing data|extra data|unterminated CSV quoted field|invalid byte sequence/,
      );
    }
  });
});
