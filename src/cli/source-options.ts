import { Option } from 'commander';

import { DEFAULT_MAX_EXPANSION, EXPANSION_CHECKED_AFTER_TEXT } from '../sources/file/expansion-limit.js';
import { SOURCE_FORMATS } from '../sources/source-format.js';
import { InvalidOption } from './context.js';

/** The options that say how a file is read, shared by load, validate and inspect. */
export const SOURCE_OPTION_HELP = {
  encoding: 'text encoding: utf-8, utf-16le, utf-16be, windows-1252, iso-8859-15, … (default: detected)',
  delimiter: 'CSV: field delimiter (default: sniffed from the file)',
  headerRow: 'XLSX: the row holding the column names (default: detected)',
  records: 'JSON: the array of records (data.items); XML: the repeating element (/catalog/item)',
  entry: 'zip: the file inside the archive to load (needed when it holds several)',
} as const;

/** `--format`, one of the formats pgferry reads. */
export function formatOption(): Option {
  return new Option('-f, --format <format>', "the file's format (default: detected from its content)").choices([
    ...SOURCE_FORMATS,
  ]);
}

/** `--max-expansion`: how far gzip and zip may expand. */
export function maxExpansionOption(): Option {
  return new Option(
    '--max-expansion <ratio>',
    `gzip, zip and XLSX: stop when the data expands more than this many times its compressed size, once more than ${EXPANSION_CHECKED_AFTER_TEXT} has come out (default: ${DEFAULT_MAX_EXPANSION})`,
  ).argParser((v) => {
    const n = Number(v.replace(/:1$/, ''));
    if (!Number.isFinite(n) || n < 1)
      throw new InvalidOption(`--max-expansion must be a ratio of 1 or more, not "${v}"`);
    return n;
  });
}
