import { Transform } from 'node:stream';

import type { SourceItem } from '../reader-items.js';
import type { SourceLayout } from '../source-layout.js';
import { expansionCheck, type ExpansionLimit } from './expansion-limit.js';
import { openInput } from './input-file.js';
import { decodeText, utf8Bytes } from './text-decoder.js';

/** A file opened for staging: its records (or CSV bytes), and how far through it reading is. */
export interface OpenedSource<T> {
  items: AsyncIterable<T>;
  bytesRead: () => number;
  totalBytes: number;
  /** Stops reading (reading to the end closes by itself). */
  close: () => void;
}

/**
 * The records of a file as its format's reader yields them, unwrapped and decoded as the
 * layout says. Not for CSV: see openCsvBytes.
 */
export async function openSourceItems(
  file: string,
  layout: SourceLayout,
  limit: ExpansionLimit = {},
): Promise<OpenedSource<SourceItem>> {
  // Each reader is loaded when its format is met: exceljs alone takes a while to load.
  const opened = await openInput({ file, compression: layout.compression, entry: layout.entry }, limit);
  const close = () => opened.bytes.destroy();
  if (layout.format === 'xlsx') {
    const { readXlsxRecords } = await import('./xlsx/xlsx-reader.js');
    // A gzipped workbook is counted by its compressed bytes; a plain one as exceljs reads it.
    let read = 0;
    let input = opened.bytes;
    if (layout.compression === 'none') {
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          read += chunk.length;
          done(null, chunk);
        },
      });
      // pipe() does not pass errors on: a read error must end the reader, not hang it.
      opened.bytes.on('error', (error) => counter.destroy(error));
      input = opened.bytes.pipe(counter);
    }
    return {
      items: readXlsxRecords(input, {
        sheet: layout.sheet,
        headerRow: layout.headerRow,
        checkExpansion: zipExpansionCheck(file, limit),
      }),
      bytesRead: layout.compression === 'none' ? () => read : opened.bytesRead,
      totalBytes: opened.totalBytes,
      close,
    };
  }
  const text = decodeText(opened.chunks(), layout.encoding ?? 'utf-8', layout.bomBytes ?? 0);
  let items: AsyncIterable<SourceItem>;
  if (layout.format === 'json' || layout.format === 'ndjson') {
    const { readJsonRecords } = await import('./json/json-reader.js');
    items = readJsonRecords(text, { format: layout.format, records: layout.records });
  } else if (layout.format === 'xml') {
    const { readXmlRecords } = await import('./xml/xml-reader.js');
    items = readXmlRecords(text, { records: layout.records });
  } else if (layout.format === 'sql') {
    const { readSqlDumpRecords } = await import('./sql-dump/sql-dump-reader.js');
    items = readSqlDumpRecords(text, { table: layout.table });
  } else {
    close();
    throw new Error(`openSourceItems cannot read ${layout.format}: CSV goes through openCsvBytes`);
  }
  return { items, bytesRead: opened.bytesRead, totalBytes: opened.totalBytes, close };
}

/** A CSV file's bytes as UTF-8, unwrapped (within `limit`) and transcoded as the layout says. */
export async function openCsvBytes(
  file: string,
  layout: SourceLayout,
  limit: ExpansionLimit = {},
): Promise<OpenedSource<Buffer>> {
  const opened = await openInput({ file, compression: layout.compression, entry: layout.entry }, limit);
  return {
    items: utf8Bytes(opened.chunks(), layout.encoding ?? 'utf-8', layout.bomBytes ?? 0),
    bytesRead: opened.bytesRead,
    totalBytes: opened.totalBytes,
    close: () => opened.bytes.destroy(),
  };
}

/** The workbook's own zip, held to the same expansion limit as a zip the data came in. */
function zipExpansionCheck(file: string, limit: ExpansionLimit): (inflated: number, compressed: number) => void {
  let compressedSoFar = 0;
  const check = expansionCheck(file, 'zip', limit, () => compressedSoFar);
  return (inflated, compressed) => {
    compressedSoFar = compressed;
    check(inflated);
  };
}
