import path from 'node:path';

import { PgferryError } from '../errors.js';

/** The formats `pgferry export` writes. */
export const EXPORT_FORMATS = ['csv', 'tsv', 'xlsx', 'json', 'ndjson', 'xml', 'sql'] as const;

export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const EXTENSIONS: Record<string, ExportFormat> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.xlsx': 'xlsx',
  '.json': 'json',
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
  '.xml': 'xml',
  '.sql': 'sql',
};

/**
 * The format and compression a file name asks for: `rows.csv.gz` is gzipped CSV; a name
 * without a known extension gives no format.
 *
 * @example
 *   formatFromPath('out/products.ndjson.gz') // { format: 'ndjson', gzip: true }
 */
export function formatFromPath(file: string): { format: ExportFormat | undefined; gzip: boolean } {
  const lower = file.toLowerCase();
  const gzip = lower.endsWith('.gz');
  const name = gzip ? lower.slice(0, -3) : lower;
  return { format: EXTENSIONS[path.extname(name)], gzip };
}

/** The format named by `--format`, or a user error listing the formats. */
export function parseExportFormat(name: string): ExportFormat {
  const format = name.toLowerCase();
  if ((EXPORT_FORMATS as readonly string[]).includes(format)) return format as ExportFormat;
  throw new PgferryError(`unknown format ${JSON.stringify(name)}: choose one of ${EXPORT_FORMATS.join(', ')}`);
}
