import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';

import ExcelJS from 'exceljs';

import type { ExportColumn, ExportRow, ValueKind } from './export-column.js';
import { neutraliseFormula } from './formula-neutralise.js';

/** The largest integer a spreadsheet's number (a double) holds exactly. */
const MAX_EXACT = 2n ** 53n;

/**
 * What XML, and so an xlsx file, cannot carry as it is: control characters (CR included, which
 * XML turns into LF), DEL (which exceljs drops), U+FFFE and U+FFFF; and a `_` that would read as
 * the start of such an escape.
 */
// eslint-disable-next-line no-control-regex
const OOXML_ESCAPED = /[\x00-\x08\x0B-\x1F\x7F\uFFFE\uFFFF]|_(?=x[0-9A-Fa-f]{4}_)/g;

export interface XlsxWriterOptions {
  /** Name of the one sheet (made valid: at most 31 characters, none of `[]:*?/\`). */
  sheet: string;
  /** Prefix formula-like text with `'` (see neutraliseFormula). (Default: true) */
  neutralise?: boolean;
}

/**
 * Writes rows into an xlsx workbook streamed to `target` with exceljs's WorkbookWriter (no
 * shared strings, so nothing accumulates): one sheet, a bold header row of the column names,
 * then one row a row. Integers within ±2^53 and floats are numbers; numeric is a number only
 * when a double gives back exactly the same text (`String(Number(v)) === v`), else text;
 * booleans are booleans; everything else is text, dates and timestamps included, so that the
 * values read back exactly as PostgreSQL wrote them. Characters XML cannot carry are written
 * as OOXML's `_xHHHH_` escapes, as Excel does.
 *
 * A Writable of row arrays; it ends `target` when it finishes.
 */
export class XlsxWriter extends Writable {
  private readonly workbook: ExcelJS.stream.xlsx.WorkbookWriter;
  private readonly sheet: ExcelJS.Worksheet;
  private readonly kinds: ValueKind[];
  private readonly neutralise: boolean;

  constructor(
    columns: readonly ExportColumn[],
    private readonly target: Writable,
    options: XlsxWriterOptions,
  ) {
    super({ objectMode: true, highWaterMark: 4 });
    this.kinds = columns.map((c) => c.kind);
    this.neutralise = options.neutralise !== false;
    this.workbook = new ExcelJS.stream.xlsx.WorkbookWriter({
      stream: target,
      useStyles: true,
      useSharedStrings: false,
    });
    this.sheet = this.workbook.addWorksheet(sheetName(options.sheet));
    const header = this.sheet.addRow(columns.map((c) => escapeOoxml(c.name)));
    header.font = { bold: true };
    header.commit();
  }

  override _write(rows: ExportRow[], _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      for (const values of rows) this.sheet.addRow(values.map((v, i) => this.cell(v, this.kinds[i]))).commit();
    } catch (error) {
      callback(error as Error);
      return;
    }
    const full = [this.sheetEntry(), this.target].find((stream) => stream !== undefined && needsDrain(stream));
    if (full) once(full, 'drain').then(() => callback(), callback);
    else callback();
  }

  /**
   * Where the zip reads the sheet's XML from. exceljs writes the sheet into its own buffer
   * (StreamBuf, in batch mode) and passes it on without waiting, into the PassThrough that
   * archiver made of it (archiver-utils normalizeInputSource); archiver compresses from there.
   * So without waiting on that PassThrough, rows pile up in memory as fast as PostgreSQL sends
   * them while compression lags (1M rows: 320 MB instead of a flat 130). Reached through
   * exceljs 4.4's internals; should they change, this returns undefined and only the target's
   * backpressure applies.
   */
  private sheetEntry(): EventEmitter | undefined {
    const pipes = (this.sheet as unknown as { stream?: { pipes?: unknown[] } }).stream?.pipes;
    const entry = Array.isArray(pipes) ? pipes[0] : undefined;
    return entry instanceof EventEmitter && '_writableState' in entry ? entry : undefined;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sheet.commit();
    this.workbook.commit().then(() => callback(), callback);
  }

  private cell(value: string | null, kind: ValueKind): ExcelJS.CellValue {
    if (value === null) return null;
    switch (kind) {
      case 'integer': {
        const n = BigInt(value);
        return n <= MAX_EXACT && n >= -MAX_EXACT ? Number(value) : value;
      }
      case 'float': {
        const n = Number(value);
        return Number.isFinite(n) ? n : value;
      }
      case 'numeric': {
        // NaN and Infinity pass String(Number(v)) === v, but a spreadsheet has no such number.
        const n = Number(value);
        return Number.isFinite(n) && String(n) === value ? n : value;
      }
      case 'boolean':
        return value === 't';
      default:
        return escapeOoxml(this.neutralise ? neutraliseFormula(value) : value);
    }
  }
}

/** Text as OOXML's ST_Xstring carries it: `_xHHHH_` for what XML cannot hold, `_x005F_` for a `_` that would read as one. */
export function escapeOoxml(text: string): string {
  return text.replace(OOXML_ESCAPED, (char) => `_x${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}_`);
}

/** Whether a write to the stream returned false and it has not drained since (archiver's streams are readable-stream 2's). */
function needsDrain(stream: EventEmitter): boolean {
  const state = stream as { writableNeedDrain?: boolean; _writableState?: { needDrain?: boolean } };
  return state.writableNeedDrain ?? state._writableState?.needDrain ?? false;
}

/**
 * A valid sheet name, as Excel requires: at most 31 characters, none of `[]:*?/\`, not starting
 * or ending with `'`, not `History` (reserved).
 */
export function sheetName(name: string): string {
  const cleaned = Array.from(name.replace(/[[\]:*?/\\]/g, '_'))
    .slice(0, 31)
    .join('')
    .replace(/^'+|'+$/g, '');
  if (cleaned === '') return 'export';
  return cleaned.toLowerCase() === 'history' ? `${cleaned.slice(0, 30)}_` : cleaned;
}
