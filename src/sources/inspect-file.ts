import { stat } from 'node:fs/promises';

import { PgferryError } from '../errors.js';
import { CsvScanner, splitFields } from './file/csv/csv-scanner.js';
import { refuseBadDelimiter } from './file/csv/delimiter-option.js';
import { openInput } from './file/input-file.js';
import { findJsonArrays, type JsonArrayPath } from './file/json/json-array-paths.js';
import { openCsvBytes, openSourceItems } from './file/open-file-source.js';
import { readSourceLayout, type SourceOptions } from './file/read-source-layout.js';
import { decodeText } from './file/text-decoder.js';
import type { SourceItem } from './reader-items.js';
import type { SourceLayout } from './source-layout.js';
import { asSourceError } from './source-syntax-error.js';
import { stagedColumnNames } from './staged-column-names.js';

/** What `pgferry inspect` finds in a file, without a database. */
export interface FileInspection {
  file: string;
  bytes: number;
  /** How a load would read it: format, wrapper, encoding (and why), delimiter, sheet, records. */
  layout: Omit<SourceLayout, 'bomBytes' | 'letters' | 'columns'>;
  /** The row or line holding the column names (CSV: 1; XLSX: the sheet row found or given). */
  headerRow?: number;
  /** XLSX: every sheet of the workbook. */
  sheets?: string[];
  /** JSON: the arrays that could hold the records (`--records`: some elements are objects), and the one read (`chosen`). */
  recordArrays?: (JsonArrayPath & { chosen: boolean })[];
  /**
   * Each source column: its name as the file writes it, the staged column it becomes, and how
   * a mapping names it (`s."Unit Price"`).
   */
  columns: { source: string; staged: string; inMapping: string }[];
  /** The first rows as they would be staged, by staged column; `line` as rejects would show it. */
  sample: { line: number; values: Record<string, string | null> }[];
  /** Lines among those read for the sample that a load would reject before the mapping. */
  rejects: { line: number; rule: string; message: string }[];
}

/** (Default: 10) */
const DEFAULT_SAMPLE_ROWS = 10;

/**
 * `pgferry inspect FILE`: how a load would read a file — format, encoding and why, delimiter,
 * header row, sheets or JSON arrays, the staged column names as a mapping must write them — and
 * its first rows. Reads the file with the load's own readers and needs no database.
 *
 * @example
 *   const seen = await inspectFile('kunden.csv', { encoding: 'windows-1252' });
 *   seen.columns.map((c) => c.inMapping) // ['s."Kundennummer"', 's."Straße"']
 */
export async function inspectFile(
  file: string,
  options: SourceOptions & { rows?: number } = {},
): Promise<FileInspection> {
  const fileStat = await stat(file).catch(() => undefined);
  if (!fileStat?.isFile()) throw new PgferryError(`no such file: ${file}`);
  refuseBadDelimiter(options.delimiter);
  const rows = options.rows ?? DEFAULT_SAMPLE_ROWS;
  const layout = await readSourceLayout(file, options);
  const staged = stagedColumnNames(layout.columns);
  const { bomBytes: _bom, letters: _letters, columns: _columns, ...shown } = layout;
  const inspection: FileInspection = {
    file,
    bytes: fileStat.size,
    layout: shown,
    columns: layout.columns.map((source, i) => ({
      source,
      staged: staged[i],
      inMapping: `s.${quoteIdent(staged[i])}`,
    })),
    sample: [],
    rejects: [],
  };
  try {
    if (layout.format === 'csv') {
      inspection.headerRow = 1;
      await sampleCsv({ file, layout, options, rows, staged }, inspection);
    } else {
      await sampleRecords({ file, layout, options, rows, staged }, inspection);
    }
    if (layout.format === 'xlsx' && layout.compression === 'none') {
      const { listXlsxSheets } = await import('./file/xlsx/xlsx-reader.js');
      inspection.sheets = await listXlsxSheets(() => file);
    }
    if (layout.format === 'json') inspection.recordArrays = await jsonArrays(file, layout, options);
  } catch (error) {
    throw asSourceError(error, file);
  }
  return inspection;
}

/** A name as SQL must write it: always double-quoted, which is right whatever the name. */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** What a sample is read from, and how many rows. */
interface SampleRequest {
  file: string;
  layout: SourceLayout;
  options: SourceOptions;
  rows: number;
  /** The staged column names, parallel to the layout's columns. */
  staged: string[];
}

/** The first records of a CSV file, split as COPY would split them, and the rejects among them. */
async function sampleCsv(
  { file, layout, options, rows, staged }: SampleRequest,
  inspection: FileInspection,
): Promise<void> {
  const opened = await openCsvBytes(file, layout, options);
  const delimiter = layout.delimiter!.charCodeAt(0);
  const scanner = new CsvScanner({
    delimiter: layout.delimiter!,
    encoding: layout.encoding,
    onRecord: (line, raw) => {
      if (inspection.sample.length < rows)
        inspection.sample.push({ line, values: byColumn(staged, splitFields(raw, delimiter)) });
    },
    onReject: (reject) => {
      if (inspection.sample.length < rows)
        inspection.rejects.push({ line: reject.line, rule: reject.rule, message: reject.message });
    },
  });
  try {
    for await (const chunk of opened.items) {
      scanner.push(chunk);
      if (inspection.sample.length >= rows) return;
    }
    scanner.finish();
  } finally {
    opened.close();
  }
}

/** The first records of any other format, as its reader yields them. */
async function sampleRecords(
  { file, layout, options, rows, staged }: SampleRequest,
  inspection: FileInspection,
): Promise<void> {
  const opened = await openSourceItems(file, layout, options);
  const stagedOf = new Map(layout.columns.map((name, i) => [name, staged[i]]));
  try {
    for await (const item of opened.items as AsyncIterable<SourceItem>) {
      if (inspection.sample.length >= rows) break;
      if (item.kind === 'columns') inspection.headerRow = item.row;
      else if (item.kind === 'reject')
        inspection.rejects.push({ line: item.line, rule: item.rule, message: item.message });
      else if (Array.isArray(item.values))
        inspection.sample.push({ line: item.line, values: byColumn(staged, item.values) });
      else {
        const values: Record<string, string | null> = {};
        for (const [key, value] of item.values) values[stagedOf.get(key) ?? key] = value;
        inspection.sample.push({ line: item.line, values });
      }
    }
  } finally {
    opened.close();
  }
}

function byColumn(staged: string[], values: (string | null)[]): Record<string, string | null> {
  return Object.fromEntries(staged.map((name, i) => [name, values[i] ?? null]));
}

/** The arrays of a JSON document that `--records` could name; the one a load reads is `chosen`. */
async function jsonArrays(
  file: string,
  layout: SourceLayout,
  options: SourceOptions,
): Promise<(JsonArrayPath & { chosen: boolean })[]> {
  const opened = await openInput({ file, compression: layout.compression, entry: layout.entry }, options);
  try {
    const arrays = await findJsonArrays(decodeText(opened.chunks(), layout.encoding ?? 'utf-8', layout.bomBytes ?? 0));
    const { recordsPath } = await import('./file/json/json-reader.js');
    const asked = layout.records === undefined ? undefined : (recordsPath(layout.records) ?? []).join('\u0000');
    // Without --records a load reads the document when it is an array, else the first array member.
    const topLevel = arrays.find((array) => array.path === '$' || pathKey(array.path).split('\u0000').length === 1);
    const chosen = asked ?? (topLevel ? pathKey(topLevel.path) : undefined);
    // Records must be objects: an array without any is worth showing only when it is the one read.
    return arrays
      .map((array) => ({ ...array, chosen: pathKey(array.path) === chosen }))
      .filter((array) => array.objects > 0 || array.chosen);
  } finally {
    opened.bytes.destroy();
  }
}

function pathKey(option: string): string {
  return option === '$'
    ? ''
    : option.startsWith('/')
      ? option.slice(1).split('/').join('\u0000')
      : option.split('.').join('\u0000');
}
