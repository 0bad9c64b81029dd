import { createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGunzip, gzipSync } from 'node:zlib';

import ExcelJS from 'exceljs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import {
  cellAddress,
  listXlsxSheets,
  readXlsxRecords,
  type XlsxReaderOptions,
} from '../src/sources/file/xlsx/xlsx-reader.js';
import { type SourceColumns, type SourceItem, type SourceRecord } from '../src/sources/reader-items.js';
import { SourceSyntaxError } from '../src/sources/source-syntax-error.js';
import { int, prng } from './helpers/prng.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'xlsx');
const fixture = (name: string) => path.join(FIXTURES, name);

// The reader spools sheets under os.tmpdir(): point it at a folder of this file's own, so that
// every test can check that nothing was left behind.
const TMP = mkdtempSync(path.join(os.tmpdir(), 'xlsx-reader-test-'));
const SPOOL_ROOT = path.join(TMP, 'spool');
mkdirSync(SPOOL_ROOT);
process.env.TMPDIR = SPOOL_ROOT;

afterEach(() => {
  expect(readdirSync(SPOOL_ROOT)).toEqual([]);
});

afterAll(() => {
  rmSync(TMP, { recursive: true, force: true });
});

async function read(input: NodeJS.ReadableStream | string, options?: XlsxReaderOptions): Promise<SourceItem[]> {
  const items: SourceItem[] = [];
  for await (const item of readXlsxRecords(input, options)) items.push(item);
  return items;
}

/** The records' values, by line. */
function valuesByLine(items: SourceItem[]): Map<number, (string | null)[]> {
  const records = items.filter((item): item is SourceRecord => item.kind === 'record');
  return new Map(records.map((record) => [record.line, record.values as (string | null)[]]));
}

/** The error a read throws. */
async function readError(input: NodeJS.ReadableStream | string, options?: XlsxReaderOptions): Promise<Error> {
  try {
    await read(input, options);
  } catch (error) {
    return error as Error;
  }
  throw new Error('the read did not fail');
}

/** A workbook built in the test, as a stream of its bytes. */
async function workbookStream(build: (workbook: ExcelJS.Workbook) => void): Promise<Readable> {
  const workbook = new ExcelJS.Workbook();
  build(workbook);
  return Readable.from([Buffer.from(await workbook.xlsx.writeBuffer())]);
}

/** Bytes as a stream, in chunks of the given size. */
function streamOf(bytes: Buffer, chunkSize = bytes.length || 1): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

const CATALOG_HEADER = ['SKU', 'Name', 'Price', 'Discount', 'Added', 'Updated at', 'Active', 'Link', 'Double'];

// ---------------------------------------------------------------------------------------------
// The header
// ---------------------------------------------------------------------------------------------

describe('readXlsxRecords: the header', () => {
  it('skips a title row above the header, and the rows above it are not records', async () => {
    const items = await read(fixture('catalog.xlsx'));
    expect(items[0]).toEqual({
      kind: 'columns',
      names: CATALOG_HEADER,
      sheet: 'Catalog',
      letters: ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I'],
      row: 3,
    });
    // Row 6 is empty: skipped.
    expect(items.slice(1).map((item) => [item.kind, (item as SourceRecord).line])).toEqual([
      ['record', 4],
      ['record', 5],
      ['record', 7],
    ]);
  });

  it('takes the header row given', async () => {
    const detected = await read(fixture('catalog.xlsx'));
    expect(await read(fixture('catalog.xlsx'), { headerRow: 3 })).toEqual(detected);

    const items = await read(fixture('catalog.xlsx'), { headerRow: 4 });
    expect((items[0] as SourceColumns).names.slice(0, 4)).toEqual(['007', 'Blue widget', '1234.5', '0.15']);
    expect([...valuesByLine(items).keys()]).toEqual([5, 7]);
  });

  it('fails when the header row given is empty', async () => {
    const error = await readError(fixture('catalog.xlsx'), { headerRow: 2 });
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error.message).toBe('row 2 of sheet "Catalog", the header row, is empty');
    expect((await readError(fixture('catalog.xlsx'), { headerRow: 99 })).message).toBe(
      'row 99 of sheet "Catalog", the header row, is empty',
    );
  });

  it("names an empty header cell within the header's span ''", async () => {
    const [columns] = await read(fixture('catalog.xlsx'), { sheet: 'My Sheet' });
    expect(columns).toEqual({
      kind: 'columns',
      names: ['id', '', 'amount', 'note'],
      sheet: 'My Sheet',
      letters: ['A', 'B', 'C', 'D'],
      row: 1,
    });
  });

  it("spans the header's first to last non-empty cell, wherever it starts", async () => {
    const items = await read(fixture('handmade.xlsx'), { sheet: 'Data' });
    expect(items).toEqual([
      { kind: 'columns', names: ['k', 'v'], sheet: 'Data', letters: ['B', 'C'], row: 2 },
      { kind: 'record', line: 3, values: ['one', '1'] },
    ]);
  });

  it('takes the widest row when no row as wide is all text (numbers as column names)', async () => {
    const input = await workbookStream((workbook) => {
      const sheet = workbook.addWorksheet('Years');
      sheet.getRow(1).values = ['Sales by year'];
      sheet.getRow(2).values = ['region', 2025, 2026];
      sheet.getRow(3).values = ['north', 10, 12];
    });
    const items = await read(input);
    expect(items[0]).toMatchObject({ names: ['region', '2025', '2026'] });
    expect(valuesByLine(items)).toEqual(new Map([[3, ['north', '10', '12']]]));
  });

  it('looks for the header in the first 10 non-empty rows only', async () => {
    const input = await workbookStream((workbook) => {
      const sheet = workbook.addWorksheet('Long');
      sheet.getRow(1).values = ['a', 'b'];
      for (let row = 2; row <= 12; row++) sheet.getRow(row).values = [`x${row}`, `y${row}`];
      sheet.getRow(13).values = ['p', 'q', 'r'];
    });
    const items = await read(input);
    expect(items[0]).toMatchObject({ names: ['a', 'b'] });
    expect(items.at(-1)).toMatchObject({ kind: 'reject', line: 13, rule: 'column_count' });
  });

  it('yields no column, and nothing else, for an empty sheet', async () => {
    expect(await read(fixture('catalog.xlsx'), { sheet: 'Empty' })).toEqual([
      { kind: 'columns', names: [], sheet: 'Empty', letters: [] },
    ]);
    expect(await read(fixture('catalog.xlsx'), { sheet: 'Empty', headerRow: 1 })).toEqual([
      { kind: 'columns', names: [], sheet: 'Empty', letters: [] },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

describe('readXlsxRecords: values as text', () => {
  it('reads what exceljs writes: text, rich text, currency, percentage, dates, booleans, links, formulas', async () => {
    const values = valuesByLine(await read(fixture('catalog.xlsx')));
    expect(values.get(4)).toEqual([
      '007', // text that looks like a number stays text
      'Blue widget', // rich text
      '1234.5', // currency format: a number
      '0.15', // percentage: a number
      '2026-01-15', // date
      '2026-01-15T08:30:05.250', // date and time
      'true',
      'example.com', // a hyperlink's text
      '2469', // a formula's cached result
    ]);
    expect(values.get(5)).toEqual([
      'A-2',
      'Red gadget',
      '19.99',
      '0',
      '1999-12-31',
      '2000-02-29T23:59:59',
      'false',
      null,
      '39.98', // a shared formula's cached result
    ]);
    // A formula without a cached result, empty cells: null.
    expect(values.get(7)).toEqual(['B-3', 'Green thing', '5', '0.5', null, null, 'true', null, null]);
  });

  it('writes numbers out in full below 1e21', async () => {
    const values = valuesByLine(await read(fixture('catalog.xlsx'), { sheet: 'Numbers' }));
    expect(values).toEqual(
      new Map([
        [2, ['1', '2']],
        [3, ['0.30000000000000004', '0.0000001']],
        [4, ['123456789012', '-2.5e+21']],
      ]),
    );
  });

  it('reads shared strings and styles written by the streaming WorkbookWriter', async () => {
    const items = await read(fixture('streamed.xlsx'));
    expect(items[0]).toMatchObject({ names: ['name', 'when', 'count'], sheet: 'First' });
    expect(valuesByLine(items).get(2)).toEqual(['item 1', '2026-03-01', '10']);
    expect(valuesByLine(items).get(6)).toEqual(['item 5', '2026-03-05', '50']);
  });

  it('reads dates of the 1904 date system', async () => {
    const values = valuesByLine(await read(fixture('date1904.xlsx')));
    expect(values.get(2)).toEqual(['2026-01-15', '1904-01-01T06:00:00']);
  });

  // handmade.xlsx holds what Excel writes and exceljs's writer does not.
  const EXCEL_ISMS: [label: string, value: string | null][] = [
    ['formula boolean', 'true'],
    ['formula boolean false', 'false'],
    ['shared formula', '20'],
    ['shared formula child', '40'],
    ['string formula', 'ab'],
    ['formula without result', null],
    ['rich shared string', 'Bold and plain'],
    ['phonetic', '漢字'], // its furigana reading left out
    ['escaped CR', 'line1\r\nline2 _x000D_'],
    ['inline rich', 'inline'],
    ['entities', 'a < b & c'],
    ['tiny number', '0.00000015'],
    ['17 digits', '0.30000000000000004'],
    ['written long', '1.1'], // 1.1000000000000001: the shortest form that reads back the same
    ['huge', '1e+21'],
    ['builtin date', '2023-03-15'],
    ['builtin datetime', '2023-03-15T12:00:00'],
    ['milliseconds', '2023-03-15T12:00:00.123'],
    ['custom date', '2026-01-15'],
    ['east asian date', '2026-01-15'],
    ['duration', '1.5'], // [h]:mm:ss: a duration, not a date
    ['currency', '1234.5'],
    ['percent', '0.15'],
    ['early 1900', '1900-02-28'], // serial 59, before Excel's phantom 1900-02-29
    ['iso date cell', '2024-02-29'],
    ['styled empty', null],
    ['empty string', ''], // a text cell holding '' is a value; an absent cell is NULL
    ['no numbers', '7'],
    ['after', null],
  ];

  it("reads a shared string holding '' as NULL, as an empty CSV field: blank to whoever looks", async () => {
    const input = await workbookStream((workbook) => {
      const sheet = workbook.addWorksheet('Blank');
      sheet.addRow(['sku', 'name']);
      sheet.addRow(['A1', '']);
      sheet.addRow(['A2', 'named']);
    });
    expect([...valuesByLine(await read(input)).values()]).toEqual([
      ['A1', null],
      ['A2', 'named'],
    ]);
  });

  it.each(EXCEL_ISMS)('reads a cell holding %s', async (label, value) => {
    const items = await read(fixture('handmade.xlsx'));
    const record = items.find((item) => item.kind === 'record' && (item.values as string[])[0] === label);
    expect(record).toBeDefined();
    expect((record as SourceRecord).values).toEqual([label, value]);
  });

  it('skips rows holding only empty cells, and numbers rows without numbers after the one before', async () => {
    // Row 29 holds an error; 30 has no number; 31 holds styled empty cells; 32 says 'after'.
    const lines = [...valuesByLine(await read(fixture('handmade.xlsx'))).keys()];
    expect(lines.slice(-2)).toEqual([30, 32]);
  });
});

// ---------------------------------------------------------------------------------------------
// Rejects
// ---------------------------------------------------------------------------------------------

describe('readXlsxRecords: rejects', () => {
  it('rejects a row holding an error value, naming the cell', async () => {
    const items = await read(fixture('catalog.xlsx'), { sheet: 'My Sheet' });
    expect(items.filter((item) => item.kind === 'reject')).toEqual([
      {
        kind: 'reject',
        line: 3,
        rule: 'cell_error',
        message: "'My Sheet'!C3: the cell holds the error #DIV/0!",
        raw: '2\ty\t#DIV/0!\tbad',
      },
      {
        kind: 'reject',
        line: 4,
        rule: 'column_count',
        message: "'My Sheet'!H4: a value in a column with no header",
        raw: '3\tz\t30\tok\t\t\t\tstray',
      },
      {
        // A formula's cached error.
        kind: 'reject',
        line: 7,
        rule: 'cell_error',
        message: "'My Sheet'!C7: the cell holds the error #DIV/0!",
        raw: '4\tw\t#DIV/0!\tformula error',
      },
      {
        // The first of two errors.
        kind: 'reject',
        line: 8,
        rule: 'cell_error',
        message: "'My Sheet'!B8: the cell holds the error #N/A",
        raw: '5\t#N/A\t#VALUE!\ttwo errors',
      },
    ]);
  });

  it('reads merged cells as their top-left value and nulls', async () => {
    const values = valuesByLine(await read(fixture('catalog.xlsx'), { sheet: 'My Sheet' }));
    expect(values).toEqual(
      new Map([
        [2, ['1', 'x', '10', 'ok']],
        [5, ['merged', null, '50', null]],
      ]),
    );
  });

  it("quotes a sheet name that needs it, the Excel way, in a reject's address", async () => {
    const items = await read(fixture('handmade.xlsx'));
    const reject = items.find((item) => item.kind === 'reject');
    expect(reject).toMatchObject({
      rule: 'cell_error',
      message: "'Excel-isms'!B29: the cell holds the error #DIV/0!",
      raw: 'formula error\t#DIV/0!',
    });
  });
});

describe('cellAddress', () => {
  it.each([
    ['Sheet1', 'C', 12, 'Sheet1!C12'],
    ['Données_2026', 'A', 1, 'Données_2026!A1'],
    ['My Sheet', 'AA', 3, "'My Sheet'!AA3"],
    ["Bob's", 'B', 2, "'Bob''s'!B2"],
    ['2026', 'A', 1, "'2026'!A1"],
    ['A1', 'A', 1, "'A1'!A1"],
    ['R1C1', 'A', 1, "'R1C1'!A1"],
    ['Excel-isms', 'B', 29, "'Excel-isms'!B29"],
  ])('addresses %s!%s%i as %s', (sheet, letter, row, expected) => {
    expect(cellAddress(sheet, letter, row)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// Sheets
// ---------------------------------------------------------------------------------------------

describe('sheets', () => {
  it('lists the worksheets in workbook order, hidden ones too, chart sheets not', async () => {
    expect(await listXlsxSheets(() => fixture('catalog.xlsx'))).toEqual(['Catalog', 'My Sheet', 'Numbers', 'Empty']);
    expect(await listXlsxSheets(() => fixture('handmade.xlsx'))).toEqual(['Excel-isms', 'Data']);
    expect(await listXlsxSheets(() => createReadStream(fixture('streamed.xlsx')))).toEqual(['First', 'Second']);
  });

  it('reads a sheet chosen by name or by position', async () => {
    const byName = await read(fixture('catalog.xlsx'), { sheet: 'Numbers' });
    expect(byName[0]).toMatchObject({ sheet: 'Numbers', names: ['a', 'b'] });
    expect(await read(fixture('catalog.xlsx'), { sheet: 3 })).toEqual(byName);
    expect(await read(fixture('catalog.xlsx'), { sheet: 'numbers' })).toEqual(byName);
    // The streaming writer's zip holds the sheets before their names: both are spooled first.
    const second = await read(fixture('streamed.xlsx'), { sheet: 2 });
    expect(second).toEqual([
      { kind: 'columns', names: ['x', 'y'], sheet: 'Second', letters: ['A', 'B'], row: 1 },
      { kind: 'record', line: 2, values: ['left', 'right'] },
    ]);
  });

  it('fails on a sheet the workbook lacks, naming its sheets', async () => {
    const error = await readError(fixture('catalog.xlsx'), { sheet: 'Prices' });
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error.message).toBe(
      'no sheet "Prices" in the workbook; its sheets are: "Catalog", "My Sheet", "Numbers", "Empty"',
    );
    const byPosition = await readError(fixture('streamed.xlsx'), { sheet: 3 });
    expect(byPosition).toBeInstanceOf(SourceSyntaxError);
    expect(byPosition.message).toBe('no sheet number 3 in the workbook; its sheets are: "First", "Second"');
    await expect(read(fixture('catalog.xlsx'), { sheet: 0 })).rejects.toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Inputs, and workbooks that cannot be read
// ---------------------------------------------------------------------------------------------

describe('inputs', () => {
  it('reads a stream as it reads a path', async () => {
    for (const [name, sheet] of [
      ['catalog.xlsx', 'My Sheet'],
      ['streamed.xlsx', 'First'],
      ['handmade.xlsx', 'Excel-isms'],
    ]) {
      const fromPath = await read(fixture(name), { sheet });
      const stream = createReadStream(fixture(name));
      expect(await read(stream, { sheet })).toEqual(fromPath);
      expect(stream.destroyed).toBe(true);
      // Byte by byte makes every wait a real one.
      expect(await read(streamOf(readFileSync(fixture(name)), 1), { sheet })).toEqual(fromPath);
    }
  });

  it('reads a decompressed stream (a .xlsx.gz)', async () => {
    const gunzip = createGunzip();
    Readable.from([gzipSync(readFileSync(fixture('catalog.xlsx')))]).pipe(gunzip);
    expect(await read(gunzip)).toEqual(await read(fixture('catalog.xlsx')));
  });

  it('closes everything when the reading stops early', async () => {
    for (const name of ['streamed.xlsx', 'handmade.xlsx']) {
      const stream = createReadStream(fixture(name));
      for await (const item of readXlsxRecords(stream)) if (item.kind === 'record') break;
      expect(stream.destroyed).toBe(true);
    }
  });

  it('passes an error of the input on as it is', async () => {
    const missing = await readError(fixture('missing.xlsx'));
    expect((missing as NodeJS.ErrnoException).code).toBe('ENOENT');
    const bytes = readFileSync(fixture('streamed.xlsx'));
    const failing = new Readable({
      read() {
        this.push(bytes.subarray(0, 3000));
        this.destroy(new Error('disk on fire'));
      },
    });
    expect((await readError(failing)).message).toBe('disk on fire');
  });
});

describe('workbooks that cannot be read', () => {
  it.each([
    ['not-a-zip.xlsx', 'not an XLSX workbook: the file is not a zip archive'],
    ['not-a-workbook.xlsx', 'not an XLSX workbook: it has no xl/workbook.xml nor xl/_rels/workbook.xml.rels'],
    ['truncated.xlsx', 'the workbook is truncated: its zip data ends early'],
    ['broken-sheet.xlsx', 'the XML of sheet "Excel-isms" is broken near row 33 (unexpected close tag.)'],
  ])('%s: a SourceSyntaxError saying so', async (name, message) => {
    const error = await readError(fixture(name));
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error.message).toBe(message);
    if (name !== 'broken-sheet.xlsx') {
      await expect(listXlsxSheets(() => fixture(name))).rejects.toThrow(message);
    }
  });

  it('tells an old .xls file or a password-protected workbook (an OLE file) apart', async () => {
    const ole = Buffer.concat([Buffer.from('d0cf11e0a1b11ae1', 'hex'), Buffer.alloc(504)]);
    const error = await readError(streamOf(ole));
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error.message).toBe('not an XLSX workbook: it is an old .xls file or a password-protected workbook');
  });

  it('fails on an empty input', async () => {
    const error = await readError(Readable.from([]));
    expect(error).toBeInstanceOf(SourceSyntaxError);
    expect(error.message).toBe('not an XLSX workbook: the file is empty');
  });

  it('a truncated stream rejects, and is destroyed', async () => {
    const stream = createReadStream(fixture('truncated.xlsx'));
    await expect(read(stream)).rejects.toThrow(SourceSyntaxError);
    expect(stream.destroyed).toBe(true);
  });

  // Wherever a workbook is cut, the read ends: an error, never a wait forever, a crash or part
  // of the rows. Cut after the sheet read and the parts it needs, the read may succeed.
  it.each(['streamed.xlsx', 'handmade.xlsx', 'catalog.xlsx'])('%s cut anywhere', async (name) => {
    const whole = readFileSync(fixture(name));
    const expected = await read(fixture(name));
    let failures = 0;
    for (let cut = 0; cut < whole.length; cut += 37) {
      const chunkSize = cut % 2 === 0 ? 4096 : 100;
      const outcome = await read(streamOf(whole.subarray(0, cut), chunkSize)).catch((error: Error) => error);
      if (outcome instanceof Error) {
        expect(outcome, `cut at ${cut}`).toBeInstanceOf(SourceSyntaxError);
        failures++;
      } else {
        expect(outcome, `cut at ${cut}`).toEqual(expected);
      }
    }
    expect(failures).toBeGreaterThan(whole.length / 37 / 2);
  });

  it('corrupt bytes make a SourceSyntaxError or a read, never another error', async () => {
    const rand = prng(2026);
    for (const name of ['streamed.xlsx', 'handmade.xlsx']) {
      const whole = readFileSync(fixture(name));
      for (let i = 0; i < 60; i++) {
        const bytes = Buffer.from(whole);
        for (let j = 0; j < 3; j++) bytes[int(rand, bytes.length)] ^= 1 + int(rand, 255);
        const outcome = await read(streamOf(bytes, 512)).catch((error: Error) => error);
        if (outcome instanceof Error) expect(outcome).toBeInstanceOf(SourceSyntaxError);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A large sheet
// ---------------------------------------------------------------------------------------------

describe('a large sheet', () => {
  it('reads 200,000 rows streaming', { timeout: 120_000 }, async () => {
    const rows = 200_000;
    const file = path.join(TMP, 'large.xlsx');
    const writer = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: file, useStyles: true });
    const sheet = writer.addWorksheet('Large');
    sheet.addRow(['id', 'name', 'price', 'when', 'flag', 'note']).commit();
    for (let i = 1; i <= rows; i++) {
      const row = sheet.addRow([
        i,
        `name ${i}`,
        i * 1.25,
        new Date(Date.UTC(2020, 0, 1) + i * 60_000),
        i % 2 === 0,
        'n',
      ]);
      row.getCell(4).numFmt = 'yyyy-mm-dd hh:mm';
      row.commit();
    }
    sheet.commit();
    await writer.commit();

    const started = Date.now();
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    let count = 0;
    let last: SourceRecord | undefined;
    for await (const item of readXlsxRecords(file)) {
      if (item.kind !== 'record') continue;
      count++;
      last = item;
      if (count % 1000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    console.log(
      `xlsx reader: ${count} rows in ${Date.now() - started} ms; RSS ${mib(rssBefore)} before, ${mib(peakRss)} at peak`,
    );
    expect(count).toBe(rows);
    expect(last).toEqual({
      kind: 'record',
      line: rows + 1,
      values: [String(rows), `name ${rows}`, String(rows * 1.25), '2020-05-18T21:20:00', 'true', 'n'],
    });
  });
});
