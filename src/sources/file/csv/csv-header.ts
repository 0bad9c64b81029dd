import { PgferryError } from '../../../errors.js';
import { sniffDelimiter } from '../../detect/sniff-delimiter.js';
import type { ExpansionLimit } from '../expansion-limit.js';
import { type InputFile, openInput } from '../input-file.js';
import { utf8Bytes } from '../text-decoder.js';
import { CsvHeaderError, CsvScanner } from './csv-scanner.js';

const SAMPLE_BYTES = 64 * 1024;

/** What pgferry reads of a CSV file before staging it. */
export interface CsvLayout {
  delimiter: string;
  /** Header fields as written in the file. */
  header: string[];
}

/**
 * Reads a CSV file's delimiter (sniffed unless given) and header, from its data as UTF-8
 * (unwrapped and transcoded).
 *
 * @example
 *   const { delimiter, header } = await readCsvLayout({ file: 'catalog.csv', compression: 'none' });
 */
export async function readCsvLayout(
  input: InputFile,
  options: { delimiter?: string; encoding?: string; bomBytes?: number; limit?: ExpansionLimit } = {},
): Promise<CsvLayout> {
  const { file } = input;
  const encoding = options.encoding ?? 'utf-8';
  const opened = await openInput(input, options.limit);
  let header: string[] | undefined;
  let chosen = options.delimiter;
  try {
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    let scanner: { scanner: CsvScanner; delimiterChosen: string } | undefined;
    for await (const chunk of utf8Bytes(opened.chunks(), encoding, options.bomBytes ?? 0)) {
      if (!scanner) {
        // The delimiter is sniffed from the first 64 KiB.
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes < SAMPLE_BYTES) continue;
        scanner = startScanner(Buffer.concat(pending));
        chosen = scanner.delimiterChosen;
      } else {
        scanner.scanner.push(chunk);
      }
      if (scanner.scanner.header) break;
    }
    if (!scanner) {
      scanner = startScanner(Buffer.concat(pending));
      chosen = scanner.delimiterChosen;
    }
    if (!scanner.scanner.header) scanner.scanner.finish();
    header = scanner.scanner.header;
  } catch (error) {
    if (error instanceof CsvHeaderError) {
      throw new PgferryError(error.message, { location: { file, line: error.line } });
    }
    throw error;
  } finally {
    opened.bytes.destroy();
  }
  if (!header) throw new PgferryError('the file is empty: no header line', { location: { file, line: 1 } });
  // Names decoded with replacement characters would silently differ from what the file says.
  const garbled = header.findIndex((name) => name.includes('\uFFFD'));
  if (garbled >= 0) {
    throw new PgferryError(
      encoding === 'utf-8'
        ? `header field ${garbled + 1} is not valid UTF-8 (the file was read as UTF-8; --encoding names another)`
        : `header field ${garbled + 1} has bytes not valid in ${encoding}`,
      { location: { file, line: 1, column: garbled + 1 } },
    );
  }
  return { delimiter: chosen!, header };

  function startScanner(sample: Buffer): { scanner: CsvScanner; delimiterChosen: string } {
    const delimiterChosen =
      options.delimiter ??
      sniffDelimiter(sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf ? sample.subarray(3) : sample);
    const scanner = new CsvScanner({ delimiter: delimiterChosen, onRecord: () => {}, onReject: () => {} });
    scanner.push(sample);
    return { scanner, delimiterChosen };
  }
}
