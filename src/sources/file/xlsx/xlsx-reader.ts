import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { type Duplex, type Readable, Transform, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import ExcelJS from 'exceljs';
import { SaxesParser } from 'saxes';

import { MAX_REJECT_RAW_CHARS, type SourceItem } from '../../reader-items.js';
import { SourceSyntaxError } from '../../source-syntax-error.js';

export interface XlsxReaderOptions {
  /** `--sheet`: a sheet's name, or its 1-based position (number). Default: the first sheet. */
  sheet?: string | number;
  /** `--header-row`: the sheet row holding the column names. Default: detected (see below). */
  headerRow?: number;
  /**
   * Called with the bytes inflated from the workbook's zip so far: throws to stop a workbook
   * that expands like a decompression bomb (see expansion-limit.ts). Default: no limit.
   */
  checkExpansion?: (inflated: number, compressed: number) => void;
}

/** Header detection looks at this many non-empty rows. */
const DETECT_ROWS = 10;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Sheet names in workbook order (streams the workbook; used for --sheet errors and for loading
 * every sheet). Only worksheets count: chart sheets and macro sheets are left out; hidden
 * worksheets are listed. Reading stops as soon as the names are known.
 *
 * @example
 *   await listXlsxSheets(() => 'catalog.xlsx'); // ['Catalog', 'My Sheet']
 */
export async function listXlsxSheets(input: () => NodeJS.ReadableStream | string): Promise<string[]> {
  const workbook = new WorkbookStream(input());
  try {
    for await (const entry of workbook.entries()) {
      if (!(await workbook.readStructure(entry, false))) entry.autodrain();
      if (workbook.sheets) return workbook.sheets.map((sheet) => sheet.name);
    }
    workbook.checkComplete();
    throw workbook.missingStructure();
  } finally {
    await workbook.close();
  }
}

/**
 * Reads one sheet of an XLSX workbook as records, streaming: only the shared strings and the
 * styles are held in memory. The input is a file path or a byte stream (a .xlsx.gz unzipped on
 * the fly works: no random access is needed); a stream given is consumed and destroyed.
 *
 * Yields the `columns` item first, then one `record` per non-empty row below the header (its
 * `line` is the sheet row), or a `reject` for a row holding an error value (`cell_error`) or a
 * value outside the header's columns (`column_count`). Fully empty rows are skipped. A sheet
 * with no non-empty row yields `columns` with no names, and nothing else.
 *
 * The header is the `headerRow` option's row, else the first of the first 10 non-empty rows
 * having the most non-empty cells, all text (a title row above the header is skipped); when no
 * such row is all text, the widest all-text row if it has more than half as many cells (a
 * header with an empty name), else the first row having the most cells (numbers as names).
 * The columns span from the header's first non-empty cell to its last; an empty header cell
 * within gets the name `''`.
 *
 * Values are text: numbers as JavaScript writes them, but never in exponent form below 1e21;
 * cells with a date format as `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.sss]` when they have a
 * time (no time zone: Excel's dates are naive); elapsed-time formats (`[h]:mm`) are durations
 * and stay numbers; booleans as `true`/`false`; formulas as their cached result (none: null);
 * rich text and hyperlinks as their text; empty cells, and shared or inline strings holding
 * '', as null; a `str` cell holding '' (a formula's "", an export's empty string) as ''.
 *
 * Merged cells: only the top-left cell holds the value, the others read as null (a streaming
 * read meets the merges only after the rows).
 *
 * A workbook that cannot be read (not a zip, truncated, broken XML) throws a SourceSyntaxError
 * with a one-line message, as does a `sheet` the workbook lacks. An error of the input stream
 * itself is thrown as it is.
 *
 * @example
 *   for await (const item of readXlsxRecords('catalog.xlsx', { sheet: 'Catalog' })) {
 *     if (item.kind === 'columns') console.log(item.names); // ['SKU', 'Name', 'Price', …]
 *     if (item.kind === 'record') console.log(item.line, item.values); // 4 ['007', 'Blue widget', '1234.5', …]
 *   }
 */
export async function* readXlsxRecords(
  input: NodeJS.ReadableStream | string,
  options: XlsxReaderOptions = {},
): AsyncGenerator<SourceItem> {
  checkOptions(options);
  const workbook = new WorkbookStream(input, options.checkExpansion);
  try {
    let target: SheetPart | undefined;
    /** Sheet parts met before the parts their cells need: part name → spool file. */
    const spooled = new Map<string, string>();
    let stoppedEarly = false;
    for await (const entry of workbook.entries()) {
      const part = partName(entry.path);
      if (await workbook.readStructure(entry, true)) {
        // Read: the relationships, sheet names, styles or shared strings.
      } else if (target ? part === target.part : isWorksheetPart(part)) {
        if (target && workbook.ready) {
          yield* sheetItems(target.name, workbook.sheetRows(target.name, workbook.chunks(entry)), options.headerRow);
          return;
        }
        // A sheet before the parts it needs (the usual order): kept on disk until they came.
        spooled.set(part, await workbook.spool(entry));
      } else {
        entry.autodrain();
      }
      if (!target && workbook.sheets) {
        target = chooseSheet(workbook.sheets, options.sheet);
        for (const [other, file] of spooled) {
          if (other !== target.part) {
            spooled.delete(other);
            await rm(file, { force: true });
          }
        }
      }
      if (target && workbook.ready && spooled.has(target.part)) {
        stoppedEarly = true;
        break;
      }
    }
    // At the zip's end, a truncated zip would pass for a workbook lacking parts.
    if (!stoppedEarly) workbook.checkComplete();
    if (!target) {
      if (!workbook.sheets) throw workbook.missingStructure();
      target = chooseSheet(workbook.sheets, options.sheet);
    }
    const file = spooled.get(target.part);
    if (file === undefined) {
      throw new SourceSyntaxError(`the workbook lacks the data of sheet "${target.name}" (no part ${target.part})`);
    }
    const chunks = workbook.chunks(createReadStream(file, { highWaterMark: 1 << 16 }));
    yield* sheetItems(target.name, workbook.sheetRows(target.name, chunks), options.headerRow);
  } finally {
    await workbook.close();
  }
}

/**
 * A cell's address as Excel writes it, the sheet name quoted when it needs it.
 *
 * @example
 *   cellAddress('Sheet1', 'C', 12); // 'Sheet1!C12'
 *   cellAddress('My Sheet', 'A', 3); // "'My Sheet'!A3"
 */
export function cellAddress(sheet: string, letter: string, row: number): string {
  return `${quoteSheetName(sheet)}!${letter}${row}`;
}

// ---------------------------------------------------------------------------------------------
// The workbook's zip, entry by entry
// ---------------------------------------------------------------------------------------------

// unzipper is exceljs's own streaming zip reader, loaded through exceljs so that both agree.
// Its WorkbookReader.parse() is not used as is: on a truncated file it waits forever and
// leaves its temp files behind, and it reads sheets only named `sheetN.xml`.
const requireFromExceljs = createRequire(createRequire(import.meta.url).resolve('exceljs'));
const unzipper = requireFromExceljs('unzipper') as { Parse(options: { forceStream: boolean }): Duplex };

/** A zip entry as unzipper hands it: a stream of the inflated data. */
interface ZipEntry extends Readable {
  path: string;
  autodrain(): unknown;
}

/** What is used of exceljs's streaming WorkbookReader: its parsers of the workbook's parts. */
interface ExcelJsParts {
  _parseRels(entry: Readable): Promise<void>;
  _parseWorkbook(entry: Readable): Promise<void>;
  _parseStyles(entry: Readable): Promise<void>;
  workbookRels?: { Id: string; Type?: string; Target: string; TargetMode?: string }[];
  model?: { sheets?: { name: string; rId: string }[]; properties?: { date1904?: boolean } };
  styles: {
    getStyleModel(id: number): { numFmt?: unknown } | null;
    model?: { styles?: ({ numFmtId?: number | string } | undefined)[] };
  };
}

/** A worksheet: its name and its part in the zip. */
interface SheetPart {
  name: string;
  part: string;
}

const PART_RELS = 'xl/_rels/workbook.xml.rels';
const PART_WORKBOOK = 'xl/workbook.xml';
const PART_STYLES = 'xl/styles.xml';
const PART_SHARED_STRINGS = 'xl/sharedstrings.xml';

/**
 * One pass over a workbook's zip. Every wait also ends at the zip's or the input's first error:
 * a truncated zip makes unzipper emit an error and leave the current entry unended, which would
 * otherwise wait forever. close() ends every stream and removes the spool files.
 */
class WorkbookStream {
  /** exceljs's reader, used for its part parsers and what they read. */
  readonly parts: ExcelJsParts;
  sharedStrings: string[] | undefined;
  private readonly read = new Set<string>();
  private readonly source: NodeJS.ReadableStream;
  private readonly zip: Duplex & { reachedCD?: boolean };
  /** The rejecters of the guarded waits under way. */
  private readonly waiting = new Set<(error: Error) => void>();
  /** The first error of the input or the zip, reworded. */
  private error: Error | undefined;
  private bytesSeen = 0;
  private entriesSeen = 0;
  private zipEnded = false;
  private spoolDir: string | undefined;
  private spoolCount = 0;
  private readonly open = new Set<Readable | Writable>();
  private dateStyles = new Map<number, boolean>();

  /** Bytes inflated from the zip's entries so far, for checkExpansion. */
  private inflated = 0;

  constructor(
    input: NodeJS.ReadableStream | string,
    private readonly checkExpansion?: (inflated: number, compressed: number) => void,
  ) {
    this.source = typeof input === 'string' ? createReadStream(input, { highWaterMark: 1 << 16 }) : input;
    // The input's own errors (a missing file, a broken gzip) are passed on unchanged.
    this.source.on('error', (error: Error) => this.stop(error));
    this.source.on('data', (chunk: Buffer) => (this.bytesSeen += chunk.length));
    this.zip = unzipper.Parse({ forceStream: true });
    this.zip.on('error', (error: Error) => this.stop(zipError(error, this.bytesSeen, this.entriesSeen)));
    this.zip.on('end', () => (this.zipEnded = true));
    this.source.pipe(this.zip);
    const options = { worksheets: 'emit', sharedStrings: 'ignore', styles: 'cache', hyperlinks: 'ignore' } as const;
    this.parts = new ExcelJS.stream.xlsx.WorkbookReader(this.zip, options) as unknown as ExcelJsParts;
  }

  /** The worksheets, once the workbook's relationships and sheet list were read. */
  get sheets(): SheetPart[] | undefined {
    const { workbookRels, model } = this.parts;
    if (!this.read.has(PART_RELS) || !this.read.has(PART_WORKBOOK) || !workbookRels || !model) return undefined;
    const sheets: SheetPart[] = [];
    for (const sheet of model.sheets ?? []) {
      const rel = workbookRels.find((r) => r.Id === sheet.rId);
      if (!rel || rel.TargetMode === 'External' || !(rel.Type ?? '').endsWith('/worksheet')) continue;
      sheets.push({ name: sheet.name, part: targetPart(rel.Target) });
    }
    return sheets;
  }

  /** Everything a sheet's cells need was read: it can be read straight from the zip. */
  get ready(): boolean {
    return [PART_RELS, PART_WORKBOOK, PART_STYLES, PART_SHARED_STRINGS].every((part) => this.read.has(part));
  }

  get date1904(): boolean {
    return this.parts.model?.properties?.date1904 === true;
  }

  /**
   * The zip's entries; each must be read or drained before the next comes. (Not through the
   * stream's async iterator: unzipper emits 'end' by itself, which that iterator takes for an
   * aborted stream and destroys it with an error.)
   */
  async *entries(): AsyncGenerator<ZipEntry> {
    for (;;) {
      const entry = this.zip.read() as ZipEntry | null;
      if (entry) {
        this.entriesSeen++;
        yield this.checkExpansion ? this.counted(entry) : entry;
        continue;
      }
      if (this.zipEnded) return;
      await this.guard(
        new Promise<void>((resolve) => {
          const wake = () => {
            this.zip.off('readable', wake).off('end', wake);
            resolve();
          };
          this.zip.on('readable', wake).on('end', wake);
        }),
      );
    }
  }

  /**
   * The entry's data, counted as it is inflated: a workbook is a zip, and a few kilobytes of
   * it can inflate to gigabytes of shared strings or cells. Past the limit the whole read stops.
   */
  private counted(entry: ZipEntry): ZipEntry {
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        this.inflated += chunk.length;
        try {
          this.checkExpansion!(this.inflated, this.bytesSeen);
        } catch (error) {
          this.stop(error as Error);
          done(error as Error);
          return;
        }
        done(null, chunk);
      },
    });
    // pipe() does not pass errors on: the entry's must reach whoever reads the counter.
    entry.on('error', (error) => counter.destroy(error));
    entry.pipe(counter);
    // Draining the counter drains the entry under it.
    return Object.assign(counter, { path: entry.path, autodrain: () => counter.resume() });
  }

  /** Reads the entry if it is one of the workbook's structural parts; false when it is not. */
  async readStructure(entry: ZipEntry, forCells: boolean): Promise<boolean> {
    const part = partName(entry.path);
    let parse: (() => Promise<unknown>) | undefined;
    if (part === PART_RELS) parse = () => this.parts._parseRels(entry);
    else if (part === PART_WORKBOOK) parse = () => this.parts._parseWorkbook(entry);
    else if (part === PART_STYLES && forCells) parse = () => this.parts._parseStyles(entry);
    else if (part === PART_SHARED_STRINGS && forCells) {
      parse = async () => (this.sharedStrings = await readSharedStrings(this.chunks(entry)));
    }
    if (!parse || this.read.has(part)) return false;
    try {
      await this.guard(parse());
    } catch (error) {
      throw this.error ?? brokenPart(entry.path, error);
    }
    this.read.add(part);
    return true;
  }

  /** Copies an entry to a temporary file, removed by close(). */
  async spool(entry: ZipEntry): Promise<string> {
    this.spoolDir ??= await mkdtemp(path.join(os.tmpdir(), 'pgferry-xlsx-'));
    const file = path.join(this.spoolDir, `part-${++this.spoolCount}.xml`);
    const out = createWriteStream(file);
    this.open.add(out);
    entry.pipe(out);
    // On failure the stream stays in `open`: close() waits for it before removing the folder.
    await this.guard(finished(out));
    this.open.delete(out);
    return file;
  }

  /** A stream's chunks, stopping at the first error of the zip or the input. */
  async *chunks(stream: Readable): AsyncGenerator<Buffer> {
    this.open.add(stream);
    try {
      const iterator = stream[Symbol.asyncIterator]();
      for (;;) {
        const next = (await this.guard(iterator.next())) as IteratorResult<Buffer>;
        if (next.done) return;
        yield next.value;
      }
    } finally {
      this.open.delete(stream);
    }
  }

  /** A sheet's non-empty rows, its cells' values resolved. */
  sheetRows(sheet: string, chunks: AsyncIterable<Buffer>): AsyncGenerator<SheetRow> {
    return readSheetRows(chunks, {
      sheet,
      sharedStrings: this.sharedStrings,
      date1904: this.date1904,
      isDateStyle: (style) => this.isDateStyle(style),
    });
  }

  /** At the zip's natural end: it was whole (its central directory was reached). */
  checkComplete(): void {
    if (this.error) throw this.error;
    if (this.entriesSeen > 0 && !this.zip.reachedCD) throw new SourceSyntaxError(TRUNCATED);
  }

  /** The error for a zip lacking the workbook's structure. */
  missingStructure(): SourceSyntaxError {
    if (this.entriesSeen === 0) return new SourceSyntaxError('not an XLSX workbook: the file holds no zip entries');
    const missing = [PART_WORKBOOK, PART_RELS].filter((part) => !this.read.has(part));
    return new SourceSyntaxError(`not an XLSX workbook: it has no ${missing.join(' nor ')}`);
  }

  async close(): Promise<void> {
    this.source.unpipe(this.zip);
    (this.source as Partial<Readable>).destroy?.();
    this.zip.destroy();
    // A spool file's stream may still be opening its file: removing the folder under it would
    // fail the removal (ENOTEMPTY) or the stream (ENOENT).
    const closing = [...this.open].map((stream) => {
      stream.destroy();
      return finished(stream).catch(() => undefined);
    });
    this.open.clear();
    await Promise.all(closing);
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }

  /**
   * The promise, or the first error of the zip or the input, whichever comes first. (Not
   * Promise.race with a promise of that error: each race would stay attached to it, and with it
   * the value it settled with, every chunk read.)
   */
  private guard<T>(promise: Promise<T>): Promise<T> {
    if (this.error) {
      promise.catch(() => undefined); // its own later error is not news
      return Promise.reject(this.error);
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.add(reject);
      promise.then(
        (value) => {
          this.waiting.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          this.waiting.delete(reject);
          reject(this.error ?? error);
        },
      );
    });
  }

  private stop(error: Error): void {
    this.error ??= error;
    for (const reject of this.waiting) reject(this.error);
    this.waiting.clear();
  }

  private isDateStyle(style: number): boolean {
    let isDate = this.dateStyles.get(style);
    if (isDate === undefined) {
      const format = this.parts.styles.getStyleModel(style)?.numFmt;
      if (typeof format === 'string') {
        isDate = isDateFormat(format);
      } else {
        // Built-in formats exceljs knows no code for: the East Asian date formats.
        const id = Number(this.parts.styles.model?.styles?.[style]?.numFmtId);
        isDate = (id >= 27 && id <= 36) || (id >= 50 && id <= 58);
      }
      this.dateStyles.set(style, isDate);
    }
    return isDate;
  }
}

const TRUNCATED = 'the workbook is truncated: its zip data ends early';

/** unzipper's errors, in words. */
function zipError(error: Error, bytesSeen: number, entriesSeen: number): SourceSyntaxError {
  const message = oneLine(error.message);
  if (message === 'FILE_ENDED') {
    return new SourceSyntaxError(bytesSeen === 0 ? 'not an XLSX workbook: the file is empty' : TRUNCATED);
  }
  if (/^invalid signature: 0xe011cfd0$/.test(message)) {
    return new SourceSyntaxError('not an XLSX workbook: it is an old .xls file or a password-protected workbook');
  }
  if (/^invalid signature/.test(message) && entriesSeen === 0) {
    return new SourceSyntaxError('not an XLSX workbook: the file is not a zip archive');
  }
  return new SourceSyntaxError(`the workbook's zip data is corrupt (${message})`);
}

function brokenPart(part: string, error: unknown): Error {
  if (error instanceof SourceSyntaxError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SourceSyntaxError(`the workbook's ${part} is broken (${oneLine(message)})`);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** A zip entry's name as compared with part names (OPC part names ignore case). */
function partName(entryPath: string): string {
  return entryPath.replace(/\\/g, '/').replace(/^\/+/, '').toLowerCase();
}

/** A workbook relationship's target as a part name: relative to xl/, or absolute. */
function targetPart(target: string): string {
  const absolute = target.startsWith('/');
  return partName(path.posix.normalize(absolute ? target : `xl/${target}`));
}

function isWorksheetPart(part: string): boolean {
  return part.startsWith('xl/worksheets/') && part.endsWith('.xml') && !part.includes('/_rels/');
}

function checkOptions(options: XlsxReaderOptions): void {
  const { sheet, headerRow } = options;
  if (typeof sheet === 'number' && !(Number.isInteger(sheet) && sheet >= 1)) {
    throw new RangeError(`a sheet's position counts from 1: ${sheet}`);
  }
  if (headerRow !== undefined && !(Number.isInteger(headerRow) && headerRow >= 1)) {
    throw new RangeError(`the header row is a row number from 1: ${headerRow}`);
  }
}

function chooseSheet(sheets: SheetPart[], wanted: string | number | undefined): SheetPart {
  const names = sheets.map((sheet) => JSON.stringify(sheet.name)).join(', ');
  if (wanted === undefined) {
    if (sheets.length === 0) throw new SourceSyntaxError('the workbook holds no worksheet');
    return sheets[0];
  }
  if (typeof wanted === 'number') {
    const sheet = sheets[wanted - 1];
    if (!sheet) throw new SourceSyntaxError(`no sheet number ${wanted} in the workbook; its sheets are: ${names}`);
    return sheet;
  }
  // Excel's sheet names are unique regardless of case.
  const sheet =
    sheets.find((s) => s.name === wanted) ?? sheets.find((s) => s.name.toLowerCase() === wanted.toLowerCase());
  if (!sheet)
    throw new SourceSyntaxError(`no sheet ${JSON.stringify(wanted)} in the workbook; its sheets are: ${names}`);
  return sheet;
}

// ---------------------------------------------------------------------------------------------
// Shared strings and sheet rows (read here rather than by exceljs: it decodes each chunk on its
// own, splitting characters across chunks, and reads formula booleans and errors as numbers)
// ---------------------------------------------------------------------------------------------

/** Saxes's options here: no namespaces (elements are told by local name), no positions (speed). */
type PlainXml = { position: false; xmlns: false };

/** Text decoded chunk by chunk, fed to an XML parser; its errors thrown after each chunk. */
async function* parseXml(chunks: AsyncIterable<Buffer>, parser: SaxesParser<PlainXml>): AsyncGenerator<void> {
  const decoder = new TextDecoder('utf-8');
  let error: Error | undefined;
  parser.on('error', (e) => (error ??= e));
  for await (const chunk of chunks) {
    parser.write(decoder.decode(chunk, { stream: true }));
    if (error) throw error;
    yield;
  }
  parser.write(decoder.decode());
  parser.close();
  if (error) throw error;
  yield;
}

/** An element's name without its namespace prefix (`x:c` → `c`). */
function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon < 0 ? name : name.slice(colon + 1);
}

/** OOXML escapes characters XML cannot hold as `_xHHHH_` (`_x000D_` is a carriage return). */
function unescapeText(text: string): string {
  if (!text.includes('_x')) return text;
  return text.replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * The shared string table: each `<si>`'s text, its rich-text runs joined, its phonetic
 * readings (`<rPh>`, Japanese furigana) left out.
 */
async function readSharedStrings(chunks: AsyncIterable<Buffer>): Promise<string[]> {
  const strings: string[] = [];
  const parser = new SaxesParser({ position: false, xmlns: false });
  let text = '';
  let inText = false;
  let phonetic = 0;
  parser.on('opentag', (tag) => {
    const name = localName(tag.name);
    if (name === 'si') text = '';
    else if (name === 't') inText = phonetic === 0;
    else if (name === 'rPh') phonetic++;
  });
  const onText = (value: string) => {
    if (inText) text += value;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', (tag) => {
    const name = localName(tag.name);
    if (name === 't') inText = false;
    else if (name === 'rPh') phonetic--;
    else if (name === 'si') strings.push(unescapeText(text));
  });
  for await (const _ of parseXml(chunks, parser));
  return strings;
}

/** A non-empty cell: its text, or the error value it holds. */
interface SheetCell {
  /** 1-based column. */
  col: number;
  /** The value as text; for a cell that cannot be staged, what it holds (`#DIV/0!`). */
  text: string;
  /** A string (shared, inline or a formula's), not a number, date or boolean. */
  isText: boolean;
  /** Why the cell cannot be staged (it holds an error value), as a message's tail. */
  problem?: string;
}

/** A row holding at least one non-empty cell, its cells in column order. */
interface SheetRow {
  line: number;
  cells: SheetCell[];
}

interface CellContext {
  sheet: string;
  sharedStrings: string[] | undefined;
  date1904: boolean;
  isDateStyle: (style: number) => boolean;
}

/** A sheet's non-empty rows, from its XML (`<sheetData>`), streaming. */
async function* readSheetRows(chunks: AsyncIterable<Buffer>, context: CellContext): AsyncGenerator<SheetRow> {
  const parser = new SaxesParser({ position: false, xmlns: false });
  const rows: SheetRow[] = [];
  let inSheetData = false;
  let row: SheetRow | undefined;
  let lastLine = 0;
  let lastCol = 0;
  // The cell being read: where, its type and style, its `<v>` and inline text.
  let cell: { col: number; type: string; style: number; value: string | null; inline: string | null } | undefined;
  let capture: 'value' | 'inline' | undefined;
  let inInline = false;
  let phonetic = 0;

  parser.on('opentag', (tag) => {
    switch (localName(tag.name)) {
      case 'sheetData':
        inSheetData = true;
        break;
      case 'row': {
        if (!inSheetData) break;
        const line = Number(tag.attributes.r) || lastLine + 1;
        if (line <= lastLine) {
          throw new SourceSyntaxError(
            `sheet "${context.sheet}" is broken: its row ${line} comes after row ${lastLine}`,
          );
        }
        row = { line, cells: [] };
        lastLine = line;
        lastCol = 0;
        break;
      }
      case 'c': {
        if (!row) break;
        const col = columnOf(tag.attributes.r) ?? lastCol + 1;
        lastCol = col;
        const style = Number(tag.attributes.s) || 0;
        cell = { col, type: tag.attributes.t ?? 'n', style, value: null, inline: null };
        inInline = false;
        phonetic = 0;
        break;
      }
      case 'v':
        if (cell) {
          cell.value = '';
          capture = 'value';
        }
        break;
      case 'is':
        if (cell) {
          cell.inline = '';
          inInline = true;
        }
        break;
      case 't':
        if (inInline && phonetic === 0) capture = 'inline';
        break;
      case 'rPh':
        phonetic++;
        break;
    }
  });
  const onText = (text: string) => {
    if (capture === 'value') cell!.value += text;
    else if (capture === 'inline') cell!.inline += text;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', (tag) => {
    switch (localName(tag.name)) {
      case 'v':
      case 't':
        capture = undefined;
        break;
      case 'rPh':
        phonetic--;
        break;
      case 'is':
        inInline = false;
        break;
      case 'c':
        if (cell && row) {
          const resolved = resolveCell(cell, row.line, context);
          if (resolved) row.cells.push(resolved);
        }
        cell = undefined;
        capture = undefined;
        break;
      case 'row':
        if (row && row.cells.length > 0) {
          row.cells.sort((a, b) => a.col - b.col);
          rows.push(row);
        }
        row = undefined;
        break;
      case 'sheetData':
        inSheetData = false;
        break;
    }
  });

  try {
    for await (const _ of parseXml(chunks, parser)) {
      yield* rows;
      rows.length = 0;
    }
  } catch (error) {
    if (error instanceof SourceSyntaxError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const where = lastLine > 0 ? ` near row ${lastLine}` : '';
    throw new SourceSyntaxError(`the XML of sheet "${context.sheet}" is broken${where} (${oneLine(message)})`);
  }
}

/** A cell reference's column (`C12` → 3); undefined when there is none. */
function columnOf(ref: string | undefined): number | undefined {
  if (!ref) return undefined;
  let col = 0;
  for (let i = 0; i < ref.length; i++) {
    const code = ref.charCodeAt(i) & ~0x20; // upper case
    if (code < 0x41 || code > 0x5a) break;
    col = col * 26 + (code - 0x40);
  }
  return col > 0 ? col : undefined;
}

/** A column's letters (3 → `C`, 27 → `AA`). */
function columnLetters(col: number): string {
  let letters = '';
  for (let n = col; n > 0; n = Math.floor((n - 1) / 26)) {
    letters = String.fromCharCode(0x41 + ((n - 1) % 26)) + letters;
  }
  return letters;
}

/** A cell's value as text by its type (`t`); undefined for an empty cell. */
function resolveCell(
  cell: { col: number; type: string; style: number; value: string | null; inline: string | null },
  line: number,
  context: CellContext,
): SheetCell | undefined {
  const { col, value } = cell;
  // A shared or inline string holding '' (what a spreadsheet saves for a cell cleared to '')
  // looks blank: NULL, as an absent cell is and as an empty CSV field is, so a NOT NULL column
  // rejects it whatever the file's format. A `str` cell's '' (a formula's "", and how
  // pgferry's export writes an empty string) is a value, as a quoted "" in CSV is.
  const blankIsNull = (cell: SheetCell | undefined) => (cell?.text === '' ? undefined : cell);
  const text = (text: string | null, isText: boolean): SheetCell | undefined =>
    text === null || (text === '' && !isText) ? undefined : { col, text, isText };
  const error = (text: string, problem: string): SheetCell => ({ col, text, isText: false, problem });
  switch (cell.type) {
    case 's': {
      if (value === null || value.trim() === '') return undefined;
      const string = context.sharedStrings?.[Number(value)];
      if (string === undefined) {
        const where = cellAddress(context.sheet, columnLetters(col), line);
        throw new SourceSyntaxError(`${where}: the cell refers to shared string ${value}, which the workbook lacks`);
      }
      return blankIsNull(text(string, true));
    }
    case 'inlineStr':
      return blankIsNull(text(unescapeText(cell.inline ?? value ?? ''), true));
    case 'str':
      return text(value === null ? null : unescapeText(value), true);
    case 'b':
      return value === null || value.trim() === '' ? undefined : { col, text: booleanText(value), isText: false };
    case 'e':
      return value === null || value.trim() === ''
        ? undefined
        : error(value.trim(), `the cell holds the error ${value.trim()}`);
    case 'd':
      return text(value === null ? null : isoDateText(value.trim()), false);
    default: {
      if (value === null || value.trim() === '') return undefined;
      const number = Number(value);
      if (!Number.isFinite(number)) {
        return error(value, `the cell holds ${JSON.stringify(value)} where a number belongs`);
      }
      const date = context.isDateStyle(cell.style) ? dateText(number, context.date1904) : undefined;
      return { col, text: date ?? numberText(number), isText: false };
    }
  }
}

function booleanText(value: string): string {
  const v = value.trim().toLowerCase();
  return v === '1' || v === 'true' ? 'true' : 'false';
}

/**
 * A number as text: JavaScript's shortest round-trip form, written out in full where it would
 * use an exponent for a small magnitude (1.5e-7 → `0.00000015`); 1e21 and beyond keep theirs.
 */
function numberText(n: number): string {
  const text = String(n);
  const e = text.indexOf('e');
  if (e < 0 || Math.abs(n) >= 1e21) return text;
  const sign = n < 0 ? '-' : '';
  const digits = text.slice(sign.length, e).replace('.', '');
  const exponent = Number(text.slice(e + 1));
  return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
}

/** Excel's last day (9999-12-31) as a 1900-system serial. */
const LAST_SERIAL = 2958466;

/**
 * A date serial as ISO text (`2026-01-15`, `2026-01-15T08:30:05.250`), naive like Excel's
 * dates; undefined outside Excel's range, the value then kept as a number.
 */
function dateText(serial: number, date1904: boolean): string | undefined {
  let days = date1904 ? serial + 1462 : serial;
  if (days < 0 || days >= LAST_SERIAL) return undefined;
  // Excel counts a 1900-02-29 that never was: its serials below 60 are one day early.
  if (!date1904 && days >= 1 && days < 60) days += 1;
  const date = new Date(Math.round((days - 25569) * 86_400_000));
  const day = `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}`;
  const ms = date.getUTCMilliseconds();
  const time = `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
  if (time === '00:00:00' && ms === 0) return day;
  return ms === 0 ? `${day}T${time}` : `${day}T${time}.${pad(ms, 3)}`;
}

/** A `t="d"` cell's ISO 8601 text, in the form dateText gives. */
function isoDateText(value: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}:\d{2})(\.\d+)?)?Z?$/.exec(value);
  if (!match) return value;
  const [, day, time, fraction] = match;
  const ms = fraction && Number(fraction) !== 0 ? fraction.slice(0, 4).padEnd(4, '0') : '';
  return time && (time !== '00:00:00' || ms) ? `${day}T${time}${ms}` : day;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * Whether a number format shows a date or time: it holds y, m, d, h or s outside quoted text,
 * escapes and brackets. Elapsed-time formats (`[h]:mm:ss`) are durations: false.
 */
function isDateFormat(format: string): boolean {
  const bare = format
    .replace(/"[^"]*"/g, '')
    .replace(/\\./g, '')
    .replace(/[_*]./g, '');
  if (/\[(h+|m+|s+)\]/i.test(bare)) return false;
  return /[ymdhs]/i.test(bare.replace(/\[[^\]]*\]/g, '').replace(/general/gi, ''));
}

// ---------------------------------------------------------------------------------------------
// Rows to items: the header, then records and rejects
// ---------------------------------------------------------------------------------------------

/** The columns: the header row's span, its names and letters. */
interface Header {
  first: number;
  last: number;
  names: string[];
  letters: string[];
  /** The sheet row it is. */
  line: number;
}

async function* sheetItems(
  sheet: string,
  rows: AsyncIterable<SheetRow>,
  headerRow: number | undefined,
): AsyncGenerator<SourceItem> {
  let header: Header | undefined;
  let pending: SheetRow[] = [];
  let sawRow = false;
  for await (const row of rows) {
    sawRow = true;
    if (header) {
      yield rowItem(sheet, header, row);
    } else if (headerRow !== undefined) {
      // Rows above the header are not records.
      if (row.line < headerRow) continue;
      if (row.line > headerRow) throw emptyHeaderRow(sheet, headerRow);
      header = headerOf(row);
      yield columnsItem(sheet, header);
    } else {
      pending.push(row);
      if (pending.length < DETECT_ROWS) continue;
      const found = detectHeader(pending);
      header = headerOf(found);
      yield columnsItem(sheet, header);
      for (const below of pending) if (below.line > found.line) yield rowItem(sheet, header, below);
      pending = [];
    }
  }
  if (header) return;
  if (headerRow !== undefined && sawRow) throw emptyHeaderRow(sheet, headerRow);
  if (pending.length === 0) {
    yield { kind: 'columns', names: [], sheet, letters: [] };
    return;
  }
  const found = detectHeader(pending);
  header = headerOf(found);
  yield columnsItem(sheet, header);
  for (const below of pending) if (below.line > found.line) yield rowItem(sheet, header, below);
}

/**
 * The header among the first non-empty rows: the first having the most non-empty cells, all of
 * them text. Failing that, the widest all-text row if it has more than half the most cells (a
 * header with an empty name, above rows filling every column); else (numbers as column names)
 * the first row having the most cells.
 */
function detectHeader(rows: SheetRow[]): SheetRow {
  const most = Math.max(...rows.map((row) => row.cells.length));
  const allText = rows.filter((row) => row.cells.every((cell) => cell.isText));
  const widestText = allText.reduce<SheetRow | undefined>(
    (best, row) => (!best || row.cells.length > best.cells.length ? row : best),
    undefined,
  );
  if (widestText && widestText.cells.length * 2 > most) return widestText;
  return rows.find((row) => row.cells.length === most)!;
}

function headerOf(row: SheetRow): Header {
  const first = row.cells[0].col;
  const last = row.cells[row.cells.length - 1].col;
  const names: string[] = new Array<string>(last - first + 1).fill('');
  const letters: string[] = [];
  for (let col = first; col <= last; col++) letters.push(columnLetters(col));
  // An error value as a name shows as its code (#N/A).
  for (const cell of row.cells) names[cell.col - first] = cell.text;
  return { first, last, names, letters, line: row.line };
}

function columnsItem(sheet: string, header: Header): SourceItem {
  return { kind: 'columns', names: header.names, sheet, letters: header.letters, row: header.line };
}

function emptyHeaderRow(sheet: string, headerRow: number): SourceSyntaxError {
  return new SourceSyntaxError(`row ${headerRow} of sheet "${sheet}", the header row, is empty`);
}

/** A row as a record, or as a reject naming its first cell that cannot be staged. */
function rowItem(sheet: string, header: Header, row: SheetRow): SourceItem {
  const values: (string | null)[] = new Array<string | null>(header.names.length).fill(null);
  for (const cell of row.cells) {
    const where = cellAddress(sheet, columnLetters(cell.col), row.line);
    if (cell.col < header.first || cell.col > header.last) {
      return reject(row, 'column_count', `${where}: a value in a column with no header`, header);
    }
    if (cell.problem) return reject(row, 'cell_error', `${where}: ${cell.problem}`, header);
    values[cell.col - header.first] = cell.text;
  }
  return { kind: 'record', line: row.line, values };
}

/** A reject; its raw text is the row's values from the header's first column, tab-separated. */
function reject(row: SheetRow, rule: string, message: string, header: Header): SourceItem {
  const first = Math.min(header.first, row.cells[0].col);
  const last = Math.max(header.last, row.cells[row.cells.length - 1].col);
  const texts: string[] = new Array<string>(last - first + 1).fill('');
  for (const cell of row.cells) texts[cell.col - first] = cell.text;
  return { kind: 'reject', line: row.line, rule, message, raw: texts.join('\t').slice(0, MAX_REJECT_RAW_CHARS) };
}

/** A sheet name as a reference writes it: quoted when it is not a plain name. */
function quoteSheetName(sheet: string): string {
  const plain =
    /^[\p{L}_][\p{L}\p{N}_.]*$/u.test(sheet) &&
    !/^[A-Za-z]{1,3}\d+$/.test(sheet) && // looks like a cell (A1)
    !/^(R\d*C\d*|R|C)$/i.test(sheet) && // or an R1C1 reference
    !/^(TRUE|FALSE)$/i.test(sheet);
  return plain ? sheet : `'${sheet.replace(/'/g, "''")}'`;
}
