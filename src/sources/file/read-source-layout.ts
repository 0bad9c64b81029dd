import { PgferryError } from '../../errors.js';
import { detectEncoding, normalizeEncoding } from '../detect/detect-encoding.js';
import { detectTextFormat, isOleMagic, isZipMagic } from '../detect/detect-format.js';
import { type SourceItem } from '../reader-items.js';
import { SOURCE_FORMATS, type SourceFormat } from '../source-format.js';
import type { SourceLayout } from '../source-layout.js';
import { asSourceError } from '../source-syntax-error.js';
import { readCsvLayout } from './csv/csv-header.js';
import type { ExpansionLimit } from './expansion-limit.js';
import {
  chooseZipEntry,
  type Compression,
  detectCompression,
  openInput,
  readHead,
  zipDataEntries,
} from './input-file.js';
import { openSourceItems } from './open-file-source.js';
import { decodeText } from './text-decoder.js';

/** What a user may say about a file; everything left out is detected. How far gzip or zip may expand: ExpansionLimit. */
export interface SourceOptions extends ExpansionLimit {
  /** csv, tsv, xlsx, json, ndjson, xml or sql. */
  format?: string;
  /** The text encoding (utf-8, utf-16le, windows-1252, iso-8859-15, …). */
  encoding?: string;
  /** The zip entry holding the data. */
  entry?: string;
  /** CSV: the field delimiter. */
  delimiter?: string;
  /** XLSX: a sheet's name or 1-based position. */
  sheet?: string | number;
  /** XLSX: the row holding the column names. */
  headerRow?: number;
  /** JSON and XML: where the records are (`data.items`, `/catalog/item`). */
  records?: string;
  /** SQL dumps: the table whose rows to load. */
  table?: string;
}

const SAMPLE_BYTES = 64 * 1024;

/**
 * Reads enough of a file to know how to stage it. CSV and XLSX: their header. JSON, NDJSON,
 * XML and SQL dumps: the whole file, once, since their columns are the union of every
 * record's keys (memory stays flat: only the names are kept). A file that cannot be read is a
 * PgferryError naming the file, line and column; nothing is registered yet.
 *
 * @example
 *   const layout = await readSourceLayout('catalog.json.gz', {});
 *   // { format: 'json', compression: 'gzip', encoding: 'utf-8', columns: ['sku', 'price.amount'], … }
 */
export async function readSourceLayout(file: string, options: SourceOptions = {}): Promise<SourceLayout> {
  const forced = parseFormat(options.format);
  const forcedEncoding = options.encoding === undefined ? undefined : parseEncoding(options.encoding);
  let compression = await detectCompression(file);
  let entry: string | undefined;
  if (compression === 'zip') {
    const names = await zipDataEntries(file);
    if (forced === 'xlsx' || (forced === undefined && names.includes('xl/workbook.xml'))) {
      // A workbook is a zip of its own: exceljs reads it.
      compression = 'none';
    } else {
      entry = await chooseZipEntry(file, options.entry, names);
    }
  } else if (options.entry !== undefined) {
    throw new PgferryError('--entry names a file inside a zip archive, and this file is not one', {
      location: { file },
    });
  }
  const input = { file, compression, entry };

  const head = await sample(input);
  if (isOleMagic(head)) {
    throw new PgferryError('this is an old binary Excel (.xls) or Office file: save it as .xlsx or CSV', {
      location: { file },
    });
  }
  const zipInside = isZipMagic(head);
  if (forced === 'xlsx' || (forced === undefined && zipInside)) {
    if (!zipInside) {
      throw new PgferryError('--format xlsx, but the file is not an XLSX workbook (not a zip archive)', {
        location: { file },
      });
    }
    refuseOptionsOfOtherFormats(file, 'xlsx', options);
    return withColumns(file, options, {
      format: 'xlsx',
      compression,
      sheet: await sheetName(file, input, options.sheet),
      headerRow: options.headerRow,
      columns: [],
    });
  }
  if (zipInside) {
    throw new PgferryError(`the file is a zip archive, not ${forced} (a zip inside gzip cannot be read)`, {
      location: { file },
    });
  }

  const detected = detectEncoding(head);
  const encoding = forcedEncoding ?? detected.encoding;
  const bomBytes = forcedEncoding === undefined || forcedEncoding === detected.encoding ? detected.bomBytes : 0;
  const encodingReason = forcedEncoding === undefined ? `detected: ${detected.reason}` : 'given by --encoding';
  const format = forced ?? detectTextFormat(await decodedSample(head, encoding, bomBytes), options);
  refuseOptionsOfOtherFormats(file, format, options);

  if (format === 'csv' || format === 'tsv') {
    const delimiter = options.delimiter ?? (format === 'tsv' ? '\t' : undefined);
    const layout = await readCsvLayout(input, { delimiter, encoding, bomBytes, limit: options });
    return {
      format: 'csv',
      compression,
      entry,
      encoding,
      encodingReason,
      bomBytes,
      delimiter: layout.delimiter,
      columns: layout.header,
    };
  }
  return withColumns(file, options, {
    format,
    compression,
    entry,
    encoding,
    encodingReason,
    bomBytes,
    records: format === 'json' || format === 'xml' ? options.records : undefined,
    table: format === 'sql' ? options.table : undefined,
    columns: [],
  });
}

/**
 * The layout's columns, from a first reading: for XLSX the header row; for keyed formats the
 * union of every record's keys, in the order they first appear.
 */
async function withColumns(file: string, limit: ExpansionLimit, layout: SourceLayout): Promise<SourceLayout> {
  const opened = await openSourceItems(file, layout, limit);
  const seen = new Set<string>();
  let counted = 0;
  try {
    for await (const item of opened.items as AsyncIterable<SourceItem>) {
      if (item.kind === 'columns') {
        if (item.names.length === 0) {
          throw new PgferryError(`sheet "${item.sheet ?? layout.sheet}" is empty: no header row`, {
            location: { file },
          });
        }
        return { ...layout, sheet: item.sheet ?? layout.sheet, columns: item.names, letters: item.letters };
      }
      counted++;
      if (item.kind === 'record' && !Array.isArray(item.values)) {
        for (const key of item.values.keys()) seen.add(key);
      }
    }
  } catch (error) {
    throw asSourceError(error, file);
  } finally {
    opened.close();
  }
  if (layout.format === 'xlsx') throw new PgferryError('the sheet is empty: no header row', { location: { file } });
  if (counted === 0) {
    // Without a record there are no columns, and no mapping could name one.
    throw new PgferryError(`the file holds no records: nothing to load`, { location: { file } });
  }
  return { ...layout, columns: [...seen] };
}

/** An option for another format than the file's is a mistake worth saying (a CSV has no sheet). */
function refuseOptionsOfOtherFormats(file: string, format: SourceFormat, options: SourceOptions): void {
  const belongs: [keyof SourceOptions, string, SourceFormat[]][] = [
    ['sheet', '--sheet', ['xlsx']],
    ['headerRow', '--header-row', ['xlsx']],
    ['records', '--records', ['json', 'xml']],
    ['table', '--table', ['sql']],
    ['delimiter', '--delimiter', ['csv', 'tsv']],
    ['encoding', '--encoding', ['csv', 'tsv', 'json', 'ndjson', 'xml', 'sql']],
  ];
  for (const [key, flag, formats] of belongs) {
    if (options[key] !== undefined && !formats.includes(format)) {
      throw new PgferryError(`${flag} is for ${formats.join(' and ')} files, and this one is ${format}`, {
        location: { file },
        hint: '--format names the format when detection got it wrong',
      });
    }
  }
}

function parseFormat(format: string | undefined): SourceFormat | undefined {
  if (format === undefined) return undefined;
  const lower = format.toLowerCase();
  if (!(SOURCE_FORMATS as readonly string[]).includes(lower)) {
    throw new PgferryError(`--format must be one of ${SOURCE_FORMATS.join(', ')}, not "${format}"`);
  }
  return lower as SourceFormat;
}

function parseEncoding(encoding: string): string {
  const known = normalizeEncoding(encoding);
  if (!known) {
    throw new PgferryError(`unknown encoding "${encoding}"`, {
      hint: 'for example utf-8, utf-16le, utf-16be, windows-1252, iso-8859-15',
    });
  }
  return known;
}

/** The first bytes of the data, unwrapped. */
async function sample(input: { file: string; compression: Compression; entry?: string }): Promise<Buffer> {
  if (input.compression === 'none') return readHead(input.file, SAMPLE_BYTES);
  const opened = await openInput(input);
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of opened.chunks()) {
      parts.push(chunk);
      size += chunk.length;
      if (size >= SAMPLE_BYTES) break;
    }
  } finally {
    opened.bytes.destroy();
  }
  return Buffer.concat(parts).subarray(0, SAMPLE_BYTES);
}

async function decodedSample(head: Buffer, encoding: string, bomBytes: number): Promise<string> {
  let text = '';
  for await (const part of decodeText([head], encoding, bomBytes)) text += part;
  return text;
}

async function sheetName(
  file: string,
  input: { file: string; compression: Compression },
  sheet: string | number | undefined,
): Promise<string | undefined> {
  if (sheet === undefined || input.compression !== 'none') return typeof sheet === 'string' ? sheet : undefined;
  const sheets = await (
    await import('./xlsx/xlsx-reader.js')
  )
    .listXlsxSheets(() => file)
    .catch((error) => {
      throw asSourceError(error, file);
    });
  // A number names a position, unless a sheet is called that.
  if (typeof sheet === 'string' && /^[1-9][0-9]*$/.test(sheet) && !sheets.includes(sheet)) sheet = Number(sheet);
  if (typeof sheet === 'number') {
    if (sheet < 1 || sheet > sheets.length) {
      throw new PgferryError(
        `the workbook has ${sheets.length} sheets, not ${sheet}: ${sheets.map((s) => JSON.stringify(s)).join(', ')}`,
        {
          location: { file },
        },
      );
    }
    return sheets[sheet - 1];
  }
  if (!sheets.includes(sheet)) {
    throw new PgferryError(
      `no sheet "${sheet}" in the workbook; its sheets are: ${sheets.map((s) => JSON.stringify(s)).join(', ')}`,
      {
        location: { file },
      },
    );
  }
  return sheet;
}
