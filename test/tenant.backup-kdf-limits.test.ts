// A backup's scrypt parameters are read before anything is authenticated: a hostile file must
// not make verify or restore spend gigabytes or minutes deriving a key (found in review).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { describe, expect, it } from 'vitest';

import { DecryptBackup, ENCRYPTION_MAGIC } from '../src/tenant-backup/backup-encryption.js';

/** The start of an encrypted backup asking for scrypt with 2^log2N, r, p. */
function headerAsking(log2N: number, r: number, p: number): Buffer {
  return Buffer.concat([ENCRYPTION_MAGIC, Buffer.from([log2N, r, p]), Buffer.alloc(16 + 8), Buffer.alloc(64)]);
}

async function decrypt(bytes: Buffer): Promise<unknown> {
  return pipeline(Readable.from([bytes]), new DecryptBackup('a passphrase'), async function* (source) {
    for await (const chunk of source) yield chunk;
  }).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('the key derivation parameters of an encrypted backup', () => {
  it.each([
    [20, 16, 1], // 2 GiB
    [17, 32, 1], // r too large
    [15, 8, 16], // p too large
  ])('2^%i, r %i, p %i: refused before any key is derived', async (log2N, r, p) => {
    // The refusal comes before deriveKey: no scrypt of that size ever runs.
    expect(String(await decrypt(headerAsking(log2N, r, p)))).toMatch(/key derivation parameters are out of range/);
  });
});
