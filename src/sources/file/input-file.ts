import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';

import yauzl from 'yauzl';

import { PgferryError } from '../../errors.js';
import { expansionCheck, type ExpansionLimit } from './expansion-limit.js';

/** How a file's data is wrapped. */
export type Compression = 'none' | 'gzip' | 'zip';

/** A data file as pgferry reads it: the file, its wrapper, and the zip entry holding the data. */
export interface InputFile {
  file: string;
  compression: Compression;
  /** The zip entry read (zip only). */
  entry?: string;
}

/** An opened input: its data as bytes, and how far through the file's own bytes reading is. */
export interface OpenedInput {
  /** The data as a stream (for readers that want one: exceljs). */
  bytes: Readable;
  /** The data chunk by chunk; a broken wrapper throws an error naming the file. */
  chunks: () => AsyncGenerator<Buffer>;
  /** Bytes of the file (compressed, for gzip) or of the zip entry read so far. */
  bytesRead: () => number;
  /** What bytesRead counts up to. */
  totalBytes: number;
}

/** The wrapper of a file, from its first bytes: gzip and zip have magic numbers. */
export async function detectCompression(file: string): Promise<Compression> {
  const head = await readHead(file, 4);
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  return 'none';
}

/** The first bytes of a file. */
export async function readHead(file: string, size: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buffer, 0, size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Opens a file's data as a byte stream, unwrapping gzip or the zip entry. A broken wrapper (a
 * truncated gzip, a zip without its directory) is an error naming the file, raised by the
 * stream; so is data that expands beyond `limit` (expansion-limit.ts), checked chunk by chunk.
 */
export async function openInput(input: InputFile, limit: ExpansionLimit = {}): Promise<OpenedInput> {
  if (input.compression === 'zip') return openZipEntry(input.file, input.entry, limit);
  const raw = createReadStream(input.file, { highWaterMark: 1 << 20 });
  let read = 0;
  const { size } = await stat(input.file);
  if (input.compression === 'none') {
    return {
      bytes: raw,
      chunks: () => chunksOf(raw, input.file, 'none', (n) => (read += n)),
      bytesRead: () => read,
      totalBytes: size,
    };
  }
  const gunzip = createGunzip({ chunkSize: 1 << 20 });
  raw.on('error', (error) => gunzip.destroy(error));
  // Counted as the compressed bytes go by: pipe reads with 'data' events already.
  raw.on('data', (chunk) => (read += chunk.length));
  raw.pipe(gunzip);
  // Checked on the stream itself, so that readers of `bytes` (exceljs) are held to it too.
  const check = expansionCheck(input.file, 'gzip', limit, () => read);
  let out = 0;
  const checked = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        check((out += chunk.length));
        done(null, chunk);
      } catch (error) {
        done(error as Error);
      }
    },
  });
  gunzip.on('error', (error) => checked.destroy(error));
  checked.on('close', () => {
    gunzip.destroy();
    raw.destroy();
  });
  gunzip.pipe(checked);
  return {
    bytes: checked,
    chunks: () => chunksOf(checked, input.file, 'gzip'),
    bytesRead: () => read,
    totalBytes: size,
  };
}

/** The data files of a zip archive (folders, macOS resource forks and hidden files left out). */
export async function zipDataEntries(file: string): Promise<string[]> {
  const zip = await openZip(file);
  try {
    const names: string[] = [];
    for await (const entry of entries(zip)) {
      if (isDataEntry(entry.fileName)) names.push(entry.fileName);
    }
    return names;
  } finally {
    zip.close();
  }
}

/**
 * The entry a zip's data comes from: the one asked for, or its only data file. `names` are
 * the archive's data entries, when the caller has listed them already.
 */
export async function chooseZipEntry(file: string, entry?: string, names?: string[]): Promise<string> {
  names ??= await zipDataEntries(file);
  if (entry !== undefined) {
    if (!names.includes(entry)) {
      throw new PgferryError(`no entry "${entry}" in the zip archive; its files are: ${quoteList(names)}`, {
        location: { file },
      });
    }
    return entry;
  }
  if (names.length === 1) return names[0];
  if (names.length === 0) throw new PgferryError('the zip archive holds no data file', { location: { file } });
  throw new PgferryError(`the zip archive holds ${names.length} files: choose one with --entry (${quoteList(names)})`, {
    location: { file },
  });
}

async function openZipEntry(file: string, name: string | undefined, limit: ExpansionLimit): Promise<OpenedInput> {
  // A layout names its entry, chosen when the file was first read: no second listing for it.
  const chosen = name ?? (await chooseZipEntry(file));
  const zip = await openZip(file);
  for await (const entry of entries(zip)) {
    if (entry.fileName !== chosen) continue;
    if (entry.isEncrypted()) {
      zip.close();
      throw new PgferryError(`zip entry "${chosen}" is encrypted`, { location: { file } });
    }
    // The entry says how far it expands (yauzl holds it to that): a bomb stops before a byte.
    const compressed = Math.max(entry.compressedSize, 1);
    const check = expansionCheck(file, 'zip', limit, () => compressed);
    try {
      check(entry.uncompressedSize);
    } catch (error) {
      zip.close();
      throw error;
    }
    const stream = await zip.openReadStreamPromise(entry);
    let read = 0;
    stream.on('close', () => zip.close());
    return {
      bytes: stream,
      chunks: () =>
        chunksOf(stream, file, 'zip', (n) => {
          read += n;
          check(read);
        }),
      bytesRead: () => read,
      totalBytes: entry.uncompressedSize,
    };
  }
  zip.close();
  throw new PgferryError(`no entry "${chosen}" in the zip archive`, { location: { file } });
}

async function openZip(file: string): Promise<yauzl.ZipFile> {
  try {
    return await yauzl.openPromise(file, { lazyEntries: true, autoClose: false });
  } catch (error) {
    throw new PgferryError(`not a readable zip archive: ${(error as Error).message}`, { location: { file } });
  }
}

async function* entries(zip: yauzl.ZipFile): AsyncGenerator<yauzl.Entry> {
  for (;;) {
    const entry = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
      const onEntry = (e: yauzl.Entry) => done(undefined, e);
      const onEnd = () => done(undefined, undefined);
      const onError = (error: Error) => done(error, undefined);
      const done = (error: Error | undefined, e: yauzl.Entry | undefined) => {
        zip.off('entry', onEntry).off('end', onEnd).off('error', onError);
        if (error) reject(new Error(`not a readable zip archive: ${error.message}`));
        else resolve(e);
      };
      zip.on('entry', onEntry).on('end', onEnd).on('error', onError);
      zip.readEntry();
    });
    if (!entry) return;
    yield entry;
  }
}

function isDataEntry(name: string): boolean {
  const base = name.split('/').pop() ?? '';
  return !name.endsWith('/') && !name.startsWith('__MACOSX/') && base !== '' && !base.startsWith('.');
}

/** A stream's chunks; its errors reworded to name the file and what broke. */
async function* chunksOf(
  stream: Readable,
  file: string,
  wrapper: Compression,
  counted?: (bytes: number) => void,
): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) {
      counted?.((chunk as Buffer).length);
      yield chunk as Buffer;
    }
  } catch (error) {
    throw wrapperError(error as Error, file, wrapper);
  }
}

function wrapperError(error: Error, file: string, wrapper: Compression): Error {
  if (error instanceof PgferryError) return error;
  const what =
    wrapper === 'gzip'
      ? 'the gzip data is truncated or corrupt'
      : wrapper === 'zip'
        ? 'the zip entry is truncated or corrupt'
        : 'the file could not be read';
  return new PgferryError(`${what} (${error.message})`, { location: { file } });
}

function quoteList(names: string[]): string {
  const shown = names.slice(0, 10).map((n) => JSON.stringify(n));
  return names.length > 10 ? `${shown.join(', ')}, …` : shown.join(', ');
}
