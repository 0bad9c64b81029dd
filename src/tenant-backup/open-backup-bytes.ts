import { PassThrough, Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

import { PgferryError } from '../errors.js';
import { DecryptBackup, ENCRYPTION_MAGIC } from './backup-encryption.js';
import { type BackupPart, readBackupParts } from './backup-sections.js';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** How a backup was written: encrypted (and compressed), compressed, or plain. */
export type BackupKind = 'encrypted' | 'gzip' | 'plain';

/**
 * The parts of a backup (see readBackupParts), read from what was written (see
 * openBackupBytes), every check done by the time the last part is yielded and the input has
 * ended. Throws a PgferryError saying why a backup is refused.
 */
export async function* backupParts(
  input: Readable,
  passphrase: string | undefined,
  onKind?: (kind: BackupKind) => void,
): AsyncGenerator<BackupPart> {
  const { bytes, done } = openBackupBytes(input, passphrase, onKind);
  const settled = done.then(
    () => undefined,
    (error: unknown) => error,
  );
  try {
    yield* readBackupParts(bytes);
  } catch (error) {
    bytes.destroy();
    const failure = await settled;
    // A stage that failed (decryption, decompression) says more than the bytes it cut short.
    throw failure instanceof PgferryError ? failure : error;
  } finally {
    if (!bytes.readableEnded) bytes.destroy();
  }
  const failure = await settled;
  if (failure) throw failure;
}

/**
 * A backup's plain bytes, from what was written: decrypted when it starts as an encrypted
 * backup does, decompressed when it is gzip, else taken as it is (`tenant copy` streams plain
 * bytes). Iterate it to its end, then await `done`: a failure of a stage (a frame that fails
 * authentication, gzip's CRC at the very end) ends the iteration and rejects `done`.
 */
export function openBackupBytes(
  input: Readable,
  passphrase: string | undefined,
  onKind?: (kind: BackupKind) => void,
): { bytes: Readable; done: Promise<void> } {
  const bytes = new PassThrough();
  const done = (async () => {
    const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head: Buffer[] = [];
    let length = 0;
    let finished = false;
    // Enough of the start to tell the kinds apart.
    while (length < ENCRYPTION_MAGIC.length) {
      const next = await iterator.next();
      if (next.done) {
        finished = true;
        break;
      }
      head.push(next.value);
      length += next.value.length;
    }
    const start = Buffer.concat(head);
    const stages: Transform[] = [];
    if (start.subarray(0, ENCRYPTION_MAGIC.length).equals(ENCRYPTION_MAGIC)) {
      onKind?.('encrypted');
      stages.push(new DecryptBackup(passphrase), createGunzip());
    } else if (start.subarray(0, 2).equals(GZIP_MAGIC)) {
      onKind?.('gzip');
      stages.push(createGunzip());
    } else {
      onKind?.('plain');
    }
    const rest = async function* () {
      yield start;
      if (finished) return;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    };
    await pipeline([Readable.from(rest(), { objectMode: false }), ...stages, bytes]);
  })();
  done.catch((error: unknown) => bytes.destroy(asBackupError(error) as Error));
  return { bytes, done: done.catch((error: unknown) => Promise.reject(asBackupError(error))) };
}

/** zlib's and the file system's errors, as one line that says what happened to the backup. */
function asBackupError(error: unknown): unknown {
  if (error instanceof PgferryError) return error;
  const code = (error as NodeJS.ErrnoException)?.code ?? '';
  if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') {
    return new PgferryError(`backup refused: it does not decompress (${(error as Error).message})`, { cause: error });
  }
  return error;
}
