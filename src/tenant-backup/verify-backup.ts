import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import { PgferryError } from '../errors.js';
import type { BackupHeader, BackupTrailer } from './backup-manifest.js';
import { backupParts } from './open-backup-bytes.js';
import { asPrintableError } from './printable-error.js';

export interface VerifyResult {
  header: BackupHeader;
  trailer: BackupTrailer;
  rows: number;
  encrypted: boolean;
}

/**
 * verifyBackup: reads a backup whole, without a database: it decrypts (every frame
 * authenticated), decompresses (gzip's CRC), and checks the manifest and every table's row
 * count and SHA-256. Returns the manifest; throws a PgferryError saying why a backup is refused.
 *
 * @example
 *   const { header, trailer } = await verifyBackup('acme.pgferry', { passphrase });
 */
export async function verifyBackup(
  input: string | Readable,
  options: { passphrase?: string } = {},
): Promise<VerifyResult> {
  let stream: Readable;
  if (typeof input === 'string') {
    try {
      stream = (await open(input, 'r')).createReadStream({ highWaterMark: 256 * 1024 });
    } catch (error) {
      throw new PgferryError(`cannot read ${input}: ${(error as Error).message}`, { cause: error });
    }
  } else {
    stream = input;
  }
  let header: BackupHeader | undefined;
  let trailer: BackupTrailer | undefined;
  let encrypted = false;
  try {
    const parts = backupParts(stream, options.passphrase, (kind) => (encrypted = kind === 'encrypted'));
    for await (const part of parts) {
      if (part.kind === 'header') header = part.header;
      else if (part.kind === 'trailer') trailer = part.trailer;
    }
  } catch (error) {
    throw asPrintableError(error);
  } finally {
    stream.destroy();
  }
  return { header: header!, trailer: trailer!, rows: trailer!.tables.reduce((n, t) => n + t.rows, 0), encrypted };
}
