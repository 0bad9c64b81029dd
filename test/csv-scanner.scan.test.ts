import { describe, expect, it } from 'vitest';

import {
  CsvHeaderError,
  CsvScanner,
  encodeFields,
  type ParseReject,
  splitFields,
} from '../src/sources/file/csv/csv-scanner.js';
import { int, pick, prng, type Rand } from './helpers/prng.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

interface RecordEvent {
  kind: 'record';
  line: number;
  /** Raw bytes as latin1, so that any byte compares exactly. */
  raw: string;
  fields: number;
}
type RejectEvent = { kind: 'reject' } & ParseReject;
type Event = RecordEvent | RejectEvent;

interface ScanResult {
  events: Event[];
  header: string[] | undefined;
  recordsRead: number;
  /** A CsvHeaderError, as line and message. */
  error?: { line: number; message: string };
}

interface ScanOptions {
  delimiter?: string;
  maxRecordBytes?: number;
  maxRawChars?: number;
  expectedFields?: number;
}

/** Splits bytes into chunks: whole, byte by byte, fixed size, or random sizes. */
type Chunking = 'whole' | 'bytes' | number | { seed: number; max: number };

function chunksOf(input: Buffer, chunking: Chunking): Buffer[] {
  if (chunking === 'whole') return [input];
  const out: Buffer[] = [];
  if (chunking === 'bytes') {
    for (let i = 0; i < input.length; i++) out.push(input.subarray(i, i + 1));
    return out;
  }
  if (typeof chunking === 'number') {
    for (let i = 0; i < input.length; i += chunking) out.push(input.subarray(i, i + chunking));
    return out;
  }
  const rand = prng(chunking.seed);
  for (let i = 0; i < input.length;) {
    // Empty chunks happen too (a stream may emit them).
    const size = int(rand, chunking.max + 1);
    out.push(input.subarray(i, i + size));
    i += size;
  }
  return out;
}

function scan(input: Buffer | string, chunking: Chunking = 'whole', options: ScanOptions = {}): ScanResult {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const events: Event[] = [];
  const scanner = new CsvScanner({
    delimiter: options.delimiter ?? ',',
    maxRecordBytes: options.maxRecordBytes,
    maxRawChars: options.maxRawChars,
    expectedFields: options.expectedFields,
    onRecord: (line, raw, fields) => events.push({ kind: 'record', line, raw: raw.toString('latin1'), fields }),
    onReject: (reject) => events.push({ kind: 'reject', ...reject }),
  });
  try {
    // Each chunk is a fresh copy: the scanner must not depend on the caller's buffer identity.
    for (const chunk of chunksOf(bytes, chunking)) scanner.push(Buffer.from(chunk));
    scanner.finish();
  } catch (error) {
    if (!(error instanceof CsvHeaderError)) throw error;
    return {
      events,
      header: scanner.header,
      recordsRead: scanner.recordsRead,
      error: { line: error.line, message: error.message },
    };
  }
  return { events, header: scanner.header, recordsRead: scanner.recordsRead };
}

const records = (r: ScanResult) => r.events.filter((e): e is RecordEvent => e.kind === 'record');
const rejects = (r: ScanResult) => r.events.filter((e): e is RejectEvent => e.kind === 'reject');
/** Records as [line, utf8 fields]. */
const rows = (r: ScanResult, delimiter = ',') =>
  records(r).map((e) => [e.line, splitFields(Buffer.from(e.raw, 'latin1'), delimiter.charCodeAt(0))] as const);
const brief = (r: ScanResult) => rejects(r).map((e) => ({ line: e.line, rule: e.rule }));

/** Every chunking must give exactly what the whole input gives. */
function expectChunkInvariant(input: Buffer | string, options: ScanOptions = {}, seeds = 6): ScanResult {
  const whole = scan(input, 'whole', options);
  const bytes = typeof input === 'string' ? Buffer.from(input) : input;
  const chunkings: Chunking[] = ['bytes', 2, 3, 7, 64];
  for (let s = 1; s <= seeds; s++) chunkings.push({ seed: s * 7919 + bytes.length, max: 1 + (s % 3 === 0 ? 200 : 9) });
  for (const chunking of chunkings) {
    const other = scan(bytes, chunking, options);
    expect(other, `chunking ${JSON.stringify(chunking)}`).toEqual(whole);
  }
  return whole;
}

/** Physical line (1-based) of a byte offset: LF, CRLF and CR each end one line. */
function lineAt(text: string, offset: number): number {
  return 1 + (text.slice(0, offset).match(/\r\n|\r|\n/g)?.length ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Random CSV generation
// ---------------------------------------------------------------------------------------------

const PIECES = [
  'a',
  'b',
  'xyz',
  ' ',
  '  ',
  '0',
  '1.5',
  ',',
  ';',
  '\t',
  '|',
  '"',
  '""',
  '\n',
  '\r',
  '\r\n',
  'é',
  '€',
  '😀',
  '日本',
  '\\',
  '\\.',
  "'",
  '-',
];

/** A field value: often empty, often plain, sometimes full of specials. */
function genValue(rand: Rand): string {
  const r = rand();
  if (r < 0.12) return '';
  const n = 1 + int(rand, 5);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(rand, PIECES);
  return s;
}

interface GenField {
  value: string;
  /** How it is written: quoted, or bare (which needs no specials). */
  quoted: boolean;
}

function encodeField(field: GenField): string {
  return field.quoted ? `"${field.value.replaceAll('"', '""')}"` : field.value;
}

function needsQuotes(value: string, delimiter: string): boolean {
  return value.includes('"') || value.includes(delimiter) || value.includes('\n') || value.includes('\r');
}

interface GenFile {
  text: string;
  delimiter: string;
  /** Expected records: their physical line and field values. */
  expected: { line: number; fields: string[]; raw: string }[];
  header: string[];
}

/** A valid file: every record well formed, random line ends, blank lines, BOM, last newline or not. */
function genValidFile(rand: Rand, delimiter = pick(rand, [',', ';', '\t', '|'])): GenFile {
  const columns = 1 + int(rand, 5);
  const rowsCount = int(rand, 12);
  const eols = ['\n', '\r\n', '\r'];
  const fileEol = pick(rand, eols);
  const mixed = rand() < 0.3;
  let text = rand() < 0.2 ? '\uFEFF' : '';
  const bom = text.length;
  const header: string[] = [];
  for (let c = 0; c < columns; c++) header.push(`h${c}${rand() < 0.2 ? ' x' : ''}`);
  text += header.join(delimiter);
  const expected: GenFile['expected'] = [];
  for (let r = 0; r < rowsCount; r++) {
    let eol = mixed ? pick(rand, eols) : fileEol;
    text += eol;
    // Blank lines are no records; never a lone CR followed by LF (that is one CRLF).
    while (rand() < 0.15) {
      eol = eol === '\r' ? '\r' : mixed ? pick(rand, ['\n', '\r\n']) : eol;
      text += eol;
    }
    const fields: GenField[] = [];
    for (let c = 0; c < columns; c++) {
      const value = genValue(rand);
      const quoted = needsQuotes(value, delimiter) || (value !== '' && rand() < 0.3) || (value === '' && rand() < 0.4);
      fields.push({ value, quoted });
    }
    // A one-column record with an unquoted empty value is a blank line, not a record.
    if (columns === 1 && !fields[0].quoted && fields[0].value === '') fields[0].quoted = true;
    const raw = fields.map((f) => encodeField(f)).join(delimiter);
    // A record ending in lone CR followed by a record/blank starting with LF would merge.
    const start = text.length;
    text += raw;
    expected.push({ line: lineAt(text, start) - (bom ? 0 : 0), fields: fields.map((f) => f.value), raw });
  }
  if (rand() < 0.5) text += mixed ? pick(rand, eols) : fileEol;
  return { text, delimiter, expected, header };
}

/** Damages a file: inserts quotes, delimiters, line ends, bad bytes; or removes bytes. */
function damage(rand: Rand, text: string, delimiter: string): Buffer {
  let bytes = Buffer.from(text, 'utf8');
  const edits = 1 + int(rand, 4);
  for (let e = 0; e < edits; e++) {
    const at = int(rand, bytes.length + 1);
    const what = int(rand, 8);
    const insert =
      what === 0
        ? Buffer.from('"')
        : what === 1
          ? Buffer.from(delimiter)
          : what === 2
            ? Buffer.from(pick(rand, ['\n', '\r', '\r\n']))
            : what === 3
              ? Buffer.from([0xe9])
              : what === 4
                ? Buffer.from([0x00])
                : what === 5
                  ? Buffer.from('"x')
                  : undefined;
    if (insert) bytes = Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]);
    else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + int(rand, 3))]);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('CsvScanner: well-formed files (property)', () => {
  it('finds exactly the generated records, with their physical lines, whatever the chunking', () => {
    const rand = prng(20240601);
    for (let n = 0; n < 300; n++) {
      const file = genValidFile(rand);
      const result = expectChunkInvariant(file.text, { delimiter: file.delimiter }, 3);
      expect(result.error).toBeUndefined();
      expect(result.header).toEqual(file.header);
      expect(rejects(result)).toEqual([]);
      expect(rows(result, file.delimiter)).toEqual(file.expected.map((e) => [e.line, e.fields]));
      // No bare quotes were generated, so each record is handed on verbatim.
      expect(records(result).map((e) => Buffer.from(e.raw, 'latin1').toString('utf8'))).toEqual(
        file.expected.map((e) => e.raw),
      );
      expect(records(result).every((e) => e.fields === file.header.length)).toBe(true);
      expect(result.recordsRead).toBe(file.expected.length);
    }
  });

  it('gives the same records whether or not the file ends with a line terminator', () => {
    const rand = prng(77);
    for (let n = 0; n < 200; n++) {
      const file = genValidFile(rand);
      const text = file.text.replace(/(\r\n|\r|\n)+$/, '');
      const bare = scan(text, { seed: n, max: 16 }, { delimiter: file.delimiter });
      for (const eol of ['\n', '\r\n', '\r']) {
        expect(scan(text + eol, { seed: n, max: 16 }, { delimiter: file.delimiter })).toEqual(bare);
      }
    }
  });
});

describe('CsvScanner: damaged files (property)', () => {
  it('gives identical records and rejects for every chunking, with sane line numbers', () => {
    const rand = prng(4242);
    let sawReject = 0;
    for (let n = 0; n < 400; n++) {
      const file = genValidFile(rand);
      const bytes = damage(rand, file.text, file.delimiter);
      const maxRecordBytes = rand() < 0.3 ? 8 + int(rand, 60) : undefined;
      const maxRawChars = rand() < 0.3 ? 1 + int(rand, 30) : undefined;
      const options = { delimiter: file.delimiter, maxRecordBytes, maxRawChars };
      const result = expectChunkInvariant(bytes, options, 3);
      if (result.error) continue;
      sawReject += rejects(result).length;
      // Each record or reject starts on a later line than the one before it.
      const lines = result.events.map((e) => e.line);
      for (let i = 1; i < lines.length; i++) expect(lines[i]).toBeGreaterThan(lines[i - 1]);
      // Nothing starts after the last physical line of the file.
      const text = bytes.toString('latin1');
      const lastLine = lineAt(text, text.length);
      for (const line of lines) expect(line).toBeLessThanOrEqual(lastLine);
      expect(result.recordsRead).toBe(result.events.length);
      for (const e of records(result)) {
        // A record handed on has the header's field count and valid UTF-8 without NUL.
        const raw = Buffer.from(e.raw, 'latin1');
        expect(e.fields).toBe(result.header!.length);
        expect(splitFields(raw, file.delimiter.charCodeAt(0))).toHaveLength(e.fields);
        expect(raw.includes(0)).toBe(false);
        expect(Buffer.from(raw.toString('utf8'), 'utf8').equals(raw)).toBe(true);
      }
      for (const e of rejects(result)) {
        if (maxRawChars !== undefined) expect(e.raw.length).toBeLessThanOrEqual(maxRawChars + 1);
      }
    }
    expect(sawReject).toBeGreaterThan(100);
  });

  it('treats a damaged file the same with or without a final line terminator (outside quotes)', () => {
    const rand = prng(99);
    for (let n = 0; n < 300; n++) {
      const file = genValidFile(rand);
      const bytes = damage(rand, file.text.replace(/(\r\n|\r|\n)+$/, ''), file.delimiter);
      const trimmed = Buffer.from(bytes.toString('latin1').replace(/(\r\n|\r|\n)+$/, ''), 'latin1');
      const bare = scan(trimmed, 'whole', { delimiter: file.delimiter });
      const ended = scan(Buffer.concat([trimmed, Buffer.from('\n')]), 'whole', { delimiter: file.delimiter });
      // A final LF inside an unclosed quote turns a one-line reject into a "first line" reject:
      // the message differs, but records, lines, rules and raw text must not.
      const strip = (r: ScanResult) => ({
        ...r,
        events: r.events.map((e) => (e.kind === 'reject' ? { ...e, message: '' } : e)),
      });
      expect(strip(ended)).toEqual(strip(bare));
    }
  });
});

describe('CsvScanner: line numbers', () => {
  it('numbers records after multi-line quoted fields by physical line (LF, CRLF, CR)', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = ['id,note', '1,"two', 'lines"', '2,plain', '3,"three', '', 'lines"', '', '4,last'].join(eol) + eol;
      const result = expectChunkInvariant(text);
      expect(rows(result)).toEqual([
        [2, ['1', `two${eol}lines`]],
        [4, ['2', 'plain']],
        [5, ['3', `three${eol}${eol}lines`]],
        [9, ['4', 'last']],
      ]);
    }
  });

  it('counts a CRLF split across chunks once, inside and outside quotes', () => {
    const text = 'a,b\r\n1,"x\r\ny"\r\n2,z\r\n\r\n3,w';
    const whole = scan(text);
    expect(rows(whole)).toEqual([
      [2, ['1', 'x\r\ny']],
      [4, ['2', 'z']],
      [6, ['3', 'w']],
    ]);
    for (let cut = 0; cut <= text.length; cut++) {
      const bytes = Buffer.from(text);
      const events: Event[] = [];
      const scanner = new CsvScanner({
        delimiter: ',',
        onRecord: (line, raw, fields) => events.push({ kind: 'record', line, raw: raw.toString('latin1'), fields }),
        onReject: (r) => events.push({ kind: 'reject', ...r }),
      });
      scanner.push(bytes.subarray(0, cut));
      scanner.push(bytes.subarray(cut));
      scanner.finish();
      expect(events, `cut at ${cut}`).toEqual(whole.events);
    }
  });

  it('counts a lone CR inside quotes as a line end, and CR then LF in separate fields as two', () => {
    // Line 2 `"x` CR, line 3 `","` LF, line 4 `y"` LF, line 5.
    const result = expectChunkInvariant('a,b\n"x\r","\ny"\n1,2\n');
    expect(rows(result)).toEqual([
      [2, ['x\r', '\ny']],
      [5, ['1', '2']],
    ]);
  });

  it('skips blank lines (LF, CRLF, CR) without making records, but counts them', () => {
    const result = expectChunkInvariant('\n\r\na,b\n\n\r\n\r1,2\r\n\r\n\n3,4\n\n');
    expect(result.header).toEqual(['a', 'b']);
    expect(rows(result)).toEqual([
      [7, ['1', '2']],
      [10, ['3', '4']],
    ]);
    expect(result.recordsRead).toBe(2);
  });

  it('treats a line of blanks as a record (and rejects it when the count is wrong)', () => {
    const result = expectChunkInvariant('a,b\n \n1,2\n');
    expect(brief(result)).toEqual([{ line: 2, rule: 'column_count' }]);
    expect(rows(result)).toEqual([[3, ['1', '2']]]);
  });
});

describe('CsvScanner: unclosed and malformed quotes', () => {
  const big = (broken: number, lines = 1000, last = '\n') => {
    const out = ['id,name,price'];
    for (let i = 2; i <= lines; i++) out.push(i === broken ? `${i},"broken name,${i}.5` : `${i},name ${i},${i}.5`);
    return out.join('\n') + last;
  };

  it('rejects only line 5 when its quote never closes; the 998 other lines are staged', () => {
    const result = expectChunkInvariant(big(5), {}, 2);
    expect(brief(result)).toEqual([{ line: 5, rule: 'unclosed_quote' }]);
    expect(rejects(result)[0].raw).toBe('5,"broken name,5.5');
    expect(rejects(result)[0].message).toMatch(/does not close/);
    const staged = records(result);
    expect(staged).toHaveLength(998);
    expect(staged.map((e) => e.line)).toEqual(Array.from({ length: 999 }, (_, i) => i + 2).filter((l) => l !== 5));
    expect(rows(result).find(([line]) => line === 6)).toEqual([6, ['6', 'name 6', '6.5']]);
    expect(result.recordsRead).toBe(999);
  });

  it('rejects only the broken line when a later quote closes it (malformed text follows)', () => {
    const text = 'id,name\n1,"open\n2,two\n3,"three"\n4,four\n';
    const result = expectChunkInvariant(text);
    // Line 2's quote is closed by line 4's first quote; `three"` follows: line 2 alone is rejected.
    expect(brief(result)).toEqual([{ line: 2, rule: 'unclosed_quote' }]);
    expect(rows(result)).toEqual([
      [3, ['2', 'two']],
      [4, ['3', 'three']],
      [5, ['4', 'four']],
    ]);
  });

  it('rejects an unclosed quote on the last line, with or without a final newline', () => {
    for (const last of ['', '\n', '\r\n', '\r']) {
      const result = expectChunkInvariant(big(10, 10, last));
      expect(brief(result), JSON.stringify(last)).toEqual([{ line: 10, rule: 'unclosed_quote' }]);
      expect(rejects(result)[0].raw).toBe('10,"broken name,10.5');
      expect(records(result)).toHaveLength(8);
      expect(result.recordsRead).toBe(9);
    }
  });

  it('rescans the lines after a broken quote even when the file has no final newline', () => {
    // The malformed multi-line record ends at the end of the file.
    const text = 'a,b\n1,"x\n2,3\n4,"y"z';
    const result = expectChunkInvariant(text);
    expect(brief(result)).toEqual([
      { line: 2, rule: 'unclosed_quote' },
      { line: 4, rule: 'malformed_quote' },
    ]);
    expect(rows(result)).toEqual([[3, ['2', '3']]]);
    expect(result.recordsRead).toBe(3);

    const counted = expectChunkInvariant('a,b\n1,"x\ny",2,3');
    expect(brief(counted)).toEqual([
      { line: 2, rule: 'unclosed_quote' },
      { line: 3, rule: 'column_count' },
    ]);
    expect(counted.recordsRead).toBe(2);
  });

  it('rejects text after a closing quote as malformed_quote', () => {
    const result = expectChunkInvariant('a,b\n"abc"x,1\n2,"q"\n"a""b" ,3\n"ok",4');
    expect(brief(result)).toEqual([
      { line: 2, rule: 'malformed_quote' },
      { line: 4, rule: 'malformed_quote' },
    ]);
    expect(rejects(result)[0].raw).toBe('"abc"x,1');
    expect(rejects(result)[0].message).toMatch(/closing quote/);
    expect(rows(result)).toEqual([
      [3, ['2', 'q']],
      [5, ['ok', '4']],
    ]);
  });

  it('accepts doubled quotes everywhere in a quoted field', () => {
    const result = expectChunkInvariant('a,b\n"""",""""""\n"a""",""",b"\n"",""\n');
    expect(rejects(result)).toEqual([]);
    expect(rows(result)).toEqual([
      [2, ['"', '""']],
      [3, ['a"', '",b']],
      [4, ['', '']],
    ]);
  });

  it('keeps a bare quote inside an unquoted field as text, re-quoting the record for COPY', () => {
    const result = expectChunkInvariant('item,size\nTV,"55"" screen"\nTV,55" screen\nx"y,z"\n');
    expect(rejects(result)).toEqual([]);
    expect(rows(result)).toEqual([
      [2, ['TV', '55" screen']],
      [3, ['TV', '55" screen']],
      [4, ['x"y', 'z"']],
    ]);
    expect(records(result).map((e) => e.raw)).toEqual(['TV,"55"" screen"', 'TV,"55"" screen"', '"x""y","z"""']);
  });

  it('re-quotes a bare-quote record without turning a quoted empty string into an unquoted empty (NULL)', () => {
    // COPY (FORMAT csv) reads "" as an empty string and an unquoted empty field as NULL; the
    // re-encoded record must keep that difference.
    const result = expectChunkInvariant('a,b,c,d\n"",5" x,,"y"\n');
    expect(rejects(result)).toEqual([]);
    const [record] = records(result);
    expect(record.fields).toBe(4);
    expect(record.raw).toBe('"","5"" x",,"y"');
  });

  it('does not let a bare quote open a quoted section (the line end still ends the record)', () => {
    const result = expectChunkInvariant('a,b\n1,2" wide\n3,4\n');
    expect(rows(result)).toEqual([
      [2, ['1', '2" wide']],
      [3, ['3', '4']],
    ]);
  });
});

describe('CsvScanner: column counts', () => {
  it('rejects too many and too few fields, naming expected and found', () => {
    const result = expectChunkInvariant('a,b,c\n1,2,3,4\n1,2\n1,2,3\n,,\n,,,\n');
    expect(brief(result)).toEqual([
      { line: 2, rule: 'column_count' },
      { line: 3, rule: 'column_count' },
      { line: 6, rule: 'column_count' },
    ]);
    expect(rejects(result).map((e) => e.message)).toEqual([
      'expected 3 fields, found 4',
      'expected 3 fields, found 2',
      'expected 3 fields, found 4',
    ]);
    expect(rejects(result).map((e) => e.raw)).toEqual(['1,2,3,4', '1,2', ',,,']);
    expect(rows(result)).toEqual([
      [4, ['1', '2', '3']],
      [5, ['', '', '']],
    ]);
  });

  it('does not count delimiters inside quotes', () => {
    const result = expectChunkInvariant('a,b\n"1,2,3","4,\n5"\n');
    expect(rows(result)).toEqual([[2, ['1,2,3', '4,\n5']]]);
  });

  it('uses expectedFields when given instead of the header count', () => {
    const result = scan('a,b\n1,2\n1,2,3\n', 'whole', { expectedFields: 3 });
    expect(brief(result)).toEqual([{ line: 2, rule: 'column_count' }]);
    expect(rejects(result)[0].message).toBe('expected 3 fields, found 2');
    expect(rows(result)).toEqual([[3, ['1', '2', '3']]]);
  });

  it('rejects only the first line of a multi-line record with the wrong count, and rescans the rest', () => {
    const result = expectChunkInvariant('a,b\n1,"x\ny",3\n4,5\n');
    expect(brief(result)).toEqual([{ line: 2, rule: 'unclosed_quote' }]);
    expect(rejects(result)[0].raw).toBe('1,"x');
    expect(rejects(result)[0].message).toMatch(/expected 2 fields, found 3/);
    // By design the next line is read again on its own: here it happens to have 2 fields (its
    // quote is a bare quote, kept as text), so it is staged.
    expect(rows(result)).toEqual([
      [3, ['y"', '3']],
      [4, ['4', '5']],
    ]);
  });

  it('cuts a CRLF off the raw text of a rejected first line', () => {
    const result = expectChunkInvariant('a,b\r\n1,"x\r\ny",3\r\n4,5\r\n');
    expect(rejects(result)).toMatchObject([{ line: 2, rule: 'unclosed_quote', raw: '1,"x' }]);
    expect(rows(result)).toEqual([
      [3, ['y"', '3']],
      [4, ['4', '5']],
    ]);
  });
});

describe('CsvScanner: record size', () => {
  it('rejects a 20 MB line as record_too_large and stages the lines after it', () => {
    const huge = Buffer.alloc(20 * 1024 * 1024, 'x');
    const input = Buffer.concat([Buffer.from('a,b\n1,2\n2,'), huge, Buffer.from('\n3,4\n4,"5\n6"\n')]);
    const expected = [
      { line: 2, rule: 'record' },
      { line: 3, rule: 'record_too_large' },
      { line: 4, rule: 'record' },
      { line: 5, rule: 'record' },
    ];
    for (const chunking of ['whole', 64 * 1024, 1024 * 1024 + 3] as Chunking[]) {
      const result = scan(input, chunking, { maxRecordBytes: 1024 * 1024, maxRawChars: 100 });
      expect(result.events.map((e) => ({ line: e.line, rule: e.kind === 'record' ? 'record' : e.rule }))).toEqual(
        expected,
      );
      const reject = rejects(result)[0];
      expect(reject.message).toMatch(/longer than 1048576 bytes/);
      // The raw text keeps only the beginning of the line.
      expect(reject.raw.startsWith('2,xxxx')).toBe(true);
      expect(reject.raw.length).toBeLessThanOrEqual(101);
      expect(result.recordsRead).toBe(4);
      expect(rows(result).at(-1)).toEqual([5, ['4', '5\n6']]);
    }
  });

  it('skips a too-large line in a CR-only file without swallowing the lines after it', () => {
    const input = `a,b\r1,${'y'.repeat(500)}\r2,3\r4,5\r`;
    const result = expectChunkInvariant(input, { maxRecordBytes: 100 }, 2);
    expect(brief(result)).toEqual([{ line: 2, rule: 'record_too_large' }]);
    expect(rows(result)).toEqual([
      [3, ['2', '3']],
      [4, ['4', '5']],
    ]);
  });

  it('skips a too-large CRLF line whose CR and LF arrive in different chunks', () => {
    const input = `a,b\r\n1,${'y'.repeat(500)}\r\n2,3\r\n`;
    const result = expectChunkInvariant(input, { maxRecordBytes: 100 }, 2);
    expect(brief(result)).toEqual([{ line: 2, rule: 'record_too_large' }]);
    expect(rows(result)).toEqual([[3, ['2', '3']]]);
  });

  it('accepts a record of exactly maxRecordBytes and rejects one byte more, whatever the chunking', () => {
    const max = 32;
    const ok = `1,${'a'.repeat(max - 2)}`;
    const tooBig = `2,${'b'.repeat(max - 1)}`;
    for (const eol of ['\n', '\r\n', '\r']) {
      const result = expectChunkInvariant(`a,b${eol}${ok}${eol}${tooBig}${eol}3,c${eol}`, { maxRecordBytes: max });
      expect(result.events.map((e) => [e.line, e.kind === 'record' ? e.raw : e.rule])).toEqual([
        [2, ok],
        [3, 'record_too_large'],
        [4, '3,c'],
      ]);
    }
    // Also as the last record, without a final newline.
    const last = expectChunkInvariant(`a,b\n${ok}\n${tooBig}`, { maxRecordBytes: max });
    expect(brief(last)).toEqual([{ line: 3, rule: 'record_too_large' }]);
    expect(records(last)).toHaveLength(1);
  });

  it('rejects the first line of a too-large multi-line record and rescans the rest', () => {
    const input = `a,b\n1,"${'q\n'.repeat(50)}"\n2,3\n`;
    const result = expectChunkInvariant(input, { maxRecordBytes: 40 });
    expect(result.events[0]).toMatchObject({ kind: 'reject', line: 2, rule: 'unclosed_quote', raw: '1,"q' });
    // Lines 3..51 hold `q` (one field: count rejects), line 52 `"` opens a quote that never closes.
    expect(rows(result)).toEqual([[53, ['2', '3']]]);
    expect(result.recordsRead).toBe(result.events.length);
  });

  it('decides the same way when a quoted field is too large before its first line end', () => {
    const input = `a,b\n1,"${'z'.repeat(100)}\nmore"\n2,3\n`;
    const result = expectChunkInvariant(input, { maxRecordBytes: 50, maxRawChars: 10 });
    expect(result.events[0]).toMatchObject({ kind: 'reject', line: 2, rule: 'record_too_large' });
    expect(rows(result).at(-1)).toEqual([4, ['2', '3']]);
  });

  it('throws CsvHeaderError when the header itself is too large', () => {
    const result = expectChunkInvariant(`${'h'.repeat(100)},b\n1,2\n`, { maxRecordBytes: 50 });
    expect(result.error).toMatchObject({ line: 1 });
    expect(result.error!.message).toMatch(/header line is longer than 50 bytes/);
    expect(records(result)).toEqual([]);
  });
});

describe('CsvScanner: encoding', () => {
  it('rejects a Latin-1 byte, naming the field and byte', () => {
    const input = Buffer.concat([Buffer.from('a,b,c\n1,caf'), Buffer.from([0xe9]), Buffer.from(',3\n4,5,6\n')]);
    const result = expectChunkInvariant(input);
    expect(brief(result)).toEqual([{ line: 2, rule: 'encoding' }]);
    expect(rejects(result)[0].message).toMatch(/^invalid UTF-8 byte 0xE9 in field 2 \(byte 6 of the record\)/);
    expect(rejects(result)[0].raw).toBe('1,caf\uFFFD,3');
    expect(rows(result)).toEqual([[3, ['4', '5', '6']]]);
    expect(result.recordsRead).toBe(2);
  });

  it('rejects a NUL byte, naming the field', () => {
    const input = Buffer.concat([Buffer.from('a,b\nx,y'), Buffer.from([0]), Buffer.from('z\n1,2\n')]);
    const result = expectChunkInvariant(input);
    expect(brief(result)).toEqual([{ line: 2, rule: 'encoding' }]);
    expect(rejects(result)[0].message).toBe('NUL byte in field 2 (byte 4 of the record)');
    expect(rows(result)).toEqual([[3, ['1', '2']]]);
  });

  it('names the right field when an earlier quoted field contains delimiters', () => {
    const input = Buffer.concat([Buffer.from('a,b,c\n"x,y,z",ok,'), Buffer.from([0xff]), Buffer.from('\n')]);
    const result = expectChunkInvariant(input);
    expect(rejects(result)[0].message).toMatch(/invalid UTF-8 byte 0xFF in field 3 /);
    const nul = expectChunkInvariant(Buffer.concat([Buffer.from('a,b\n";;,;",'), Buffer.from([0]), Buffer.from('\n')]));
    expect(rejects(nul)[0].message).toMatch(/NUL byte in field 2 /);
  });

  it('rejects overlong forms, surrogates, truncated and stray continuation bytes', () => {
    const bad = [
      [0xc0, 0x80], // overlong NUL
      [0xe0, 0x80, 0x80], // overlong
      [0xed, 0xa0, 0x80], // UTF-16 surrogate
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0x80], // stray continuation
      [0xe2, 0x82], // truncated at the end of the record
      [0xe2, 0x82, 0x41], // truncated before an ASCII letter
    ];
    for (const bytes of bad) {
      const input = Buffer.concat([Buffer.from('a,b\nok,'), Buffer.from(bytes), Buffer.from('\n1,2\n')]);
      const result = expectChunkInvariant(input);
      expect(brief(result), Buffer.from(bytes).toString('hex')).toEqual([{ line: 2, rule: 'encoding' }]);
      expect(rejects(result)[0].message).toMatch(
        /invalid UTF-8 byte 0x[0-9A-F]{2} in field 2 \(byte 4 of the record\)/,
      );
      expect(rows(result)).toEqual([[3, ['1', '2']]]);
    }
  });

  it('keeps valid multibyte UTF-8 split across chunks (2, 3 and 4 byte characters)', () => {
    const text = 'name,emoji\nJosé,😀\n日本語,€\n"multi\nline ü","𝄞"\n';
    const result = expectChunkInvariant(text);
    expect(rejects(result)).toEqual([]);
    expect(rows(result)).toEqual([
      [2, ['José', '😀']],
      [3, ['日本語', '€']],
      [4, ['multi\nline ü', '𝄞']],
    ]);
  });

  it('rejects invalid bytes inside a multi-line quoted field on the record start line, counting its lines', () => {
    const input = Buffer.concat([Buffer.from('a,b\n1,"x\ny'), Buffer.from([0xe9]), Buffer.from('\nz"\n2,3\n')]);
    const result = expectChunkInvariant(input);
    expect(brief(result)).toEqual([{ line: 2, rule: 'encoding' }]);
    expect(rows(result)).toEqual([[5, ['2', '3']]]);
  });
});

describe('CsvScanner: BOM, empty files, header', () => {
  it('strips a UTF-8 BOM, also when split across the first chunks', () => {
    const text = '\uFEFFid,name\n1,a\n';
    const result = expectChunkInvariant(text);
    expect(result.header).toEqual(['id', 'name']);
    expect(rows(result)).toEqual([[2, ['1', 'a']]]);
    const bytes = Buffer.from(text);
    for (const split of [[1, 1, 1], [1, 2], [2, 1], [0, 1, 0, 2], [3], [4]]) {
      const events: Event[] = [];
      const scanner = new CsvScanner({
        delimiter: ',',
        onRecord: (line, raw, fields) => events.push({ kind: 'record', line, raw: raw.toString('latin1'), fields }),
        onReject: (r) => events.push({ kind: 'reject', ...r }),
      });
      let at = 0;
      for (const size of split) {
        scanner.push(bytes.subarray(at, at + size));
        at += size;
      }
      scanner.push(bytes.subarray(at));
      scanner.finish();
      expect(scanner.header, JSON.stringify(split)).toEqual(['id', 'name']);
      expect(events).toEqual(result.events);
    }
  });

  it('strips only a leading BOM: one inside the data is kept as text', () => {
    const result = expectChunkInvariant('\uFEFF\uFEFFa,b\n1,\uFEFF\n');
    expect(result.header).toEqual(['\uFEFFa', 'b']);
    expect(rows(result)).toEqual([[2, ['1', '\uFEFF']]]);
  });

  it('does not take a partial BOM for one', () => {
    const input = Buffer.from([0xef, 0xbb, 0x61, 0x0a]);
    const result = expectChunkInvariant(input);
    expect(result.header).toEqual([Buffer.from([0xef, 0xbb, 0x61]).toString('utf8')]);
    expect(result.header![0]).toHaveLength(2);
  });

  it('reads nothing from an empty file, a BOM alone, or blank lines alone', () => {
    for (const input of ['', '\uFEFF', '\n', '\r\n\r\n', '\uFEFF\n\n']) {
      const result = expectChunkInvariant(input);
      expect(result).toEqual({ events: [], header: undefined, recordsRead: 0 });
    }
  });

  it('reads a header-only file, with or without newline', () => {
    for (const input of ['a,b', 'a,b\n', 'a,b\r\n\r\n', '\uFEFFa,b']) {
      const result = expectChunkInvariant(input);
      expect(result).toEqual({ events: [], header: ['a', 'b'], recordsRead: 0 });
    }
  });

  it('reads tiny files (shorter than a BOM) completely', () => {
    expect(expectChunkInvariant('a')).toEqual({ events: [], header: ['a'], recordsRead: 0 });
    expect(expectChunkInvariant('\na')).toEqual({ events: [], header: ['a'], recordsRead: 0 });
    expect(expectChunkInvariant('\n\na')).toEqual({ events: [], header: ['a'], recordsRead: 0 });
    expect(rows(expectChunkInvariant('a\nb'))).toEqual([[2, ['b']]]);
  });

  it('reads a quoted, multi-line header and numbers the next line after it', () => {
    const result = expectChunkInvariant('"first\nname","a,b",""\n1,2,3\n');
    expect(result.header).toEqual(['first\nname', 'a,b', '']);
    expect(rows(result)).toEqual([[3, ['1', '2', '3']]]);
  });

  it('throws CsvHeaderError for a header with an unclosed quote', () => {
    const result = expectChunkInvariant('"a,b\n1,2\n');
    expect(result.error?.line).toBe(1);
    expect(result.error?.message).toMatch(/^the header is malformed: a quoted field is not closed/);
    expect(result.events).toEqual([]);
    const malformed = expectChunkInvariant('a,b\n1,2\n', {});
    expect(malformed.error).toBeUndefined();
  });

  it('throws CsvHeaderError on the header line after leading blank lines', () => {
    const result = expectChunkInvariant('\n\n"a,b');
    expect(result.error?.line).toBe(3);
  });
});

describe('CsvScanner: delimiters', () => {
  it('handles ; TAB | like a comma, and a comma as plain text then', () => {
    for (const d of [';', '\t', '|']) {
      const text =
        ['a', 'b', 'c'].join(d) + '\n' + ['1,5', `"x${d}y"`, '"q""r"'].join(d) + '\n' + ['', '""', 'z'].join(d) + '\n';
      const result = expectChunkInvariant(text, { delimiter: d });
      expect(result.header).toEqual(['a', 'b', 'c']);
      expect(rows(result, d)).toEqual([
        [2, ['1,5', `x${d}y`, 'q"r']],
        [3, ['', '', 'z']],
      ]);
    }
  });

  it('refuses delimiters that cannot work', () => {
    for (const d of ['"', '\n', '\r', '', ',,', 'é', '€']) {
      expect(() => new CsvScanner({ delimiter: d, onRecord: () => {}, onReject: () => {} }), JSON.stringify(d)).toThrow(
        /unsupported delimiter/,
      );
    }
  });
});

describe('splitFields and encodeFields', () => {
  const comma = ','.charCodeAt(0);

  it('splits and unquotes', () => {
    const cases: [string, string[]][] = [
      ['', ['']],
      [',', ['', '']],
      ['a,', ['a', '']],
      [',a', ['', 'a']],
      ['"",""', ['', '']],
      ['"a,b",c', ['a,b', 'c']],
      ['"a""b"', ['a"b']],
      ['"a\nb",', ['a\nb', '']],
      ['x"y,z', ['x"y', 'z']],
      ['"ab"cd,e', ['abcd', 'e']],
      ['"unclosed,x', ['unclosed,x']],
      ['é,😀', ['é', '😀']],
    ];
    for (const [raw, fields] of cases) expect(splitFields(Buffer.from(raw), comma), raw).toEqual(fields);
  });

  it('round-trips any field values through encodeFields', () => {
    const rand = prng(5);
    for (let n = 0; n < 500; n++) {
      const d = pick(rand, [',', ';', '\t', '|']);
      const fields = Array.from({ length: 1 + int(rand, 5) }, () => genValue(rand));
      const encoded = encodeFields(fields, d.charCodeAt(0));
      expect(splitFields(encoded, d.charCodeAt(0))).toEqual(fields);
    }
  });

  it('leaves empty fields unquoted and quotes only what needs it', () => {
    expect(encodeFields(['', 'a', 'b"c', 'd,e', 'f\ng', 'h\ri', 'j;k'], comma).toString()).toBe(
      ',a,"b""c","d,e","f\ng","h\ri",j;k',
    );
  });
});
