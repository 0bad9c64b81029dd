import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

import { PgferryError } from '../errors.js';
import { CsvHeaderError, CsvScanner } from './csv-scanner.js';
import { sniffDelimiter } from './sniff-delimiter.js';

const SAMPLE_BYTES = 64 * 1024;

/** What pgferry reads of a CSV file before staging it. */
export interface CsvLayout {
  delimiter: string;
  /** Header fields as written in the file. */
  header: string[];
}

/**
 * Reads a CSV file's delimiter (sniffed unless given) and header.
 *
 * @example
 *   const { delimiter, header } = await readCsvLayout('catalog.csv');
 */
export async function readCsvLayout(file: string, delimiter?: string): Promise<CsvLayout> {
  const handle = await open(file, 'r');
  let sample: Buffer;
  try {
    const buffer = Buffer.alloc(SAMPLE_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SAMPLE_BYTES, 0);
    sample = buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  const chosen =
    delimiter ??
    sniffDelimiter(sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf ? sample.subarray(3) : sample);

  let header: string[] | undefined;
  const scanner = new CsvScanner({ delimiter: chosen, onRecord: () => {}, onReject: () => {} });
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: SAMPLE_BYTES })) {
      scanner.push(chunk as Buffer);
      if (scanner.header) break;
    }
    if (!scanner.header) scanner.finish();
    header = scanner.header;
  } catch (error) {
    if (error instanceof CsvHeaderError) {
      throw new PgferryError(error.message, { location: { file, line: error.line } });
    }
    throw error;
  }
  if (!header) throw new PgferryError('the file is empty: no header line', { location: { file, line: 1 } });
  // Names decoded with replacement characters would silently differ from what the file says.
  const garbled = header.findIndex((name) => name.includes('\uFFFD'));
  if (garbled >= 0) {
    throw new PgferryError(`header field ${garbled + 1} is not valid UTF-8 (pgferry reads UTF-8 files)`, {
      location: { file, line: 1, column: garbled + 1 },
    });
  }
  return { delimiter: chosen, header };
}
