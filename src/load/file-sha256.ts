import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

import type { SourceOptions } from '../sources/file/read-source-layout.js';

/** Which part of a file a load reads (a sheet, a zip entry, a dump's table, JSON or XML records), as asked. */
export type SourcePart = Pick<SourceOptions, 'sheet' | 'entry' | 'table' | 'records'>;

export function sourcePart(options: SourceOptions): SourcePart {
  const { sheet, entry, table, records } = options;
  return { sheet, entry, table, records };
}

/**
 * The sha256 a load records for its file: the file's own, or — when it reads one part of the
 * file, such as a sheet — a sha256 of the file's and the part's, so that another sheet of the
 * same workbook is not taken for a file already loaded.
 */
export function partSha256(fileSha: string, part: SourcePart | undefined): string {
  const named = Object.entries(part ?? {}).filter(([, value]) => value !== undefined && value !== null);
  if (named.length === 0) return fileSha;
  return createHash('sha256')
    .update(`${fileSha}\n${JSON.stringify(Object.fromEntries(named.map(([k, v]) => [k, String(v)])))}`)
    .digest('hex');
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
