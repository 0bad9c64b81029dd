import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';

import { PgferryError } from '../errors.js';

/**
 * An encrypted backup: AES-256-GCM over frames of at most 64 KiB, each authenticated on its
 * own (the STREAM construction), so that a file of any size is decrypted and checked as it
 * streams, never held whole. The key comes from the passphrase through scrypt.
 *
 *     header   ENCRYPTION_MAGIC, log2(N), r, p (one byte each), salt (16), nonce prefix (8)
 *     frames   length (4, big-endian), ciphertext (length), tag (16)
 *
 * A frame's nonce is the prefix and its number; its additional data the header, its number,
 * its length and whether it is the last. So a frame changed, dropped, reordered or cut off,
 * and a file that ends without its last frame, all fail authentication: a tampered file is
 * refused, not half read.
 */
export const ENCRYPTION_MAGIC = Buffer.from('PGFERRY-ENC\x01', 'latin1');

/** scrypt's cost: 2^15 × 8 × 128 bytes = 32 MiB and about 0.1 s a key. */
const SCRYPT = { log2N: 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const PREFIX_BYTES = 8;
const TAG_BYTES = 16;
const FRAME_BYTES = 64 * 1024;
const HEADER_BYTES = ENCRYPTION_MAGIC.length + 3 + SALT_BYTES + PREFIX_BYTES;
/** The most scrypt may ask of memory: a file's header must not make the reader allocate more. */
const MAX_LOG2N = 20;
/** The most memory a backup's scrypt parameters may ask for (128·N·r bytes): 256 MiB. */
const MAX_SCRYPT_BYTES = 256 * 1024 * 1024;

async function deriveKey(passphrase: string, salt: Buffer, log2N: number, r: number, p: number): Promise<Buffer> {
  if (!passphrase) throw new PgferryError('the passphrase is empty');
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, 32, { N: 2 ** log2N, r, p, maxmem: 256 * 2 ** log2N * r + 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

function nonce(prefix: Buffer, frame: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(frame, PREFIX_BYTES);
  return n;
}

function additionalData(header: Buffer, frame: number, length: number, last: boolean): Buffer {
  const extra = Buffer.alloc(9);
  extra.writeUInt32BE(frame, 0);
  extra.writeUInt32BE(length, 4);
  extra[8] = last ? 1 : 0;
  return Buffer.concat([header, extra]);
}

/** Encrypts what it is given (see above). */
export class EncryptBackup extends Transform {
  private header: Buffer | undefined;
  private key: Buffer | undefined;
  private pending = Buffer.alloc(0);
  private frame = 0;

  constructor(private readonly passphrase: string) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.start()
      .then(() => {
        this.pending = Buffer.concat([this.pending, chunk]);
        // One frame is kept back: only the stream's end tells which frame is the last.
        while (this.pending.length > FRAME_BYTES) {
          this.push(this.seal(this.pending.subarray(0, FRAME_BYTES), false));
          this.pending = this.pending.subarray(FRAME_BYTES);
        }
        callback();
      })
      .catch((error: Error) => callback(error));
  }

  override _flush(callback: TransformCallback): void {
    this.start()
      .then(() => {
        this.push(this.seal(this.pending, true));
        callback();
      })
      .catch((error: Error) => callback(error));
  }

  private async start(): Promise<void> {
    if (this.header) return;
    const salt = randomBytes(SALT_BYTES);
    this.header = Buffer.concat([
      ENCRYPTION_MAGIC,
      Buffer.from([SCRYPT.log2N, SCRYPT.r, SCRYPT.p]),
      salt,
      randomBytes(PREFIX_BYTES),
    ]);
    this.key = await deriveKey(this.passphrase, salt, SCRYPT.log2N, SCRYPT.r, SCRYPT.p);
    this.push(this.header);
  }

  private seal(plain: Buffer, last: boolean): Buffer {
    const header = this.header!;
    const cipher = createCipheriv(
      'aes-256-gcm',
      this.key!,
      nonce(header.subarray(HEADER_BYTES - PREFIX_BYTES), this.frame),
    );
    cipher.setAAD(additionalData(header, this.frame, plain.length, last));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(plain.length);
    this.frame++;
    return Buffer.concat([length, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  }
}

/** Decrypts an encrypted backup, refusing it at the first frame that fails authentication. */
export class DecryptBackup extends Transform {
  private header: Buffer | undefined;
  private key: Buffer | undefined;
  private pending = Buffer.alloc(0);
  private frame = 0;
  private ended = false;

  constructor(private readonly passphrase: string | undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    this.open()
      .then(() => {
        this.openFrames(false);
        callback();
      })
      .catch((error: Error) => callback(error));
  }

  override _flush(callback: TransformCallback): void {
    this.open()
      .then(() => {
        this.openFrames(true);
        if (!this.ended) throw refused('it ends before its last encrypted frame (cut off?)');
        callback();
      })
      .catch((error: Error) => callback(error));
  }

  private async open(): Promise<void> {
    if (this.key || this.pending.length < HEADER_BYTES) return;
    const header = this.pending.subarray(0, HEADER_BYTES);
    if (!header.subarray(0, ENCRYPTION_MAGIC.length).equals(ENCRYPTION_MAGIC)) {
      throw refused('it is not an encrypted pgferry backup');
    }
    if (this.passphrase === undefined) {
      throw new PgferryError('the backup is encrypted: give its passphrase', {
        hint: 'set PGFERRY_PASSPHRASE, or run in a terminal to be asked for it',
      });
    }
    const [log2N, r, p] = header.subarray(ENCRYPTION_MAGIC.length, ENCRYPTION_MAGIC.length + 3);
    // Read before anything is authenticated: a hostile file must not make verify or restore
    // spend gigabytes or minutes on scrypt. pgferry writes N 2^15, r 8, p 1 (32 MiB).
    if (
      log2N < 10 ||
      log2N > MAX_LOG2N ||
      r < 1 ||
      r > 16 ||
      p < 1 ||
      p > 4 ||
      128 * 2 ** log2N * r > MAX_SCRYPT_BYTES
    ) {
      throw refused('its key derivation parameters are out of range');
    }
    const salt = header.subarray(ENCRYPTION_MAGIC.length + 3, ENCRYPTION_MAGIC.length + 3 + SALT_BYTES);
    this.header = Buffer.from(header);
    this.key = await deriveKey(this.passphrase, salt, log2N, r, p);
    this.pending = this.pending.subarray(HEADER_BYTES);
  }

  /** Opens every whole frame pending; at the end, the last must be the one marked last. */
  private openFrames(atEnd: boolean): void {
    if (!this.key) {
      if (atEnd) throw refused('it is too short to be an encrypted backup');
      return;
    }
    for (;;) {
      if (this.pending.length < 4) break;
      const length = this.pending.readUInt32BE(0);
      if (length > FRAME_BYTES) throw refused(`frame ${this.frame} claims ${length} bytes`);
      const size = 4 + length + TAG_BYTES;
      // Whether a frame is the last is part of what is authenticated: one is opened once
      // bytes follow it, or the stream has ended (then it must be the last).
      if (this.pending.length < size || (!atEnd && this.pending.length === size)) break;
      if (this.ended) throw refused('it goes on after its last encrypted frame');
      const last = atEnd && this.pending.length === size;
      this.push(
        this.openFrame(this.pending.subarray(4, 4 + length), this.pending.subarray(4 + length, size), length, last),
      );
      this.pending = this.pending.subarray(size);
      this.frame++;
      if (last) this.ended = true;
    }
    if (atEnd && this.pending.length > 0) throw refused('it ends inside an encrypted frame (cut off?)');
  }

  private openFrame(cipherText: Buffer, tag: Buffer, length: number, last: boolean): Buffer {
    const header = this.header!;
    const decipher = createDecipheriv(
      'aes-256-gcm',
      this.key!,
      nonce(header.subarray(HEADER_BYTES - PREFIX_BYTES), this.frame),
    );
    decipher.setAAD(additionalData(header, this.frame, length, last));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(cipherText), decipher.final()]);
    } catch {
      throw refused(
        this.frame === 0
          ? 'it cannot be decrypted: the passphrase is wrong, or the file was changed'
          : `encrypted frame ${this.frame} fails authentication: the file was changed or cut off`,
      );
    }
  }
}

function refused(reason: string): PgferryError {
  return new PgferryError(`backup refused: ${reason}`);
}

/** Whether the file starts as an encrypted backup does (so that a passphrase must be asked for). */
export async function isEncryptedBackup(file: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return false;
  }
  try {
    const start = Buffer.alloc(ENCRYPTION_MAGIC.length);
    const { bytesRead } = await handle.read(start, 0, start.length, 0);
    return bytesRead === start.length && start.equals(ENCRYPTION_MAGIC);
  } finally {
    await handle.close();
  }
}
