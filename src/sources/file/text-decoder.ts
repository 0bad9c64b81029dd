import { isUtf8 } from 'node:buffer';

import iconv from 'iconv-lite';

import { UNDECODABLE } from '../reader-items.js';

/**
 * Decodes a file's bytes, chunk by chunk, into text. Bytes that are not valid in the encoding
 * become UNDECODABLE (one per bad byte or sequence), so that the reader rejects the record that
 * holds them instead of staging replacement characters.
 *
 * @example
 *   for await (const text of decodeText(createReadStream(file), 'windows-1252')) …
 */
export async function* decodeText(
  bytes: AsyncIterable<Buffer> | Iterable<Buffer>,
  encoding: string,
  bomBytes = 0,
): AsyncGenerator<string> {
  const decoder = textDecoder(encoding);
  let skip = bomBytes;
  for await (let chunk of bytes) {
    if (skip > 0) {
      const cut = Math.min(skip, chunk.length);
      chunk = chunk.subarray(cut);
      skip -= cut;
    }
    const text = decoder.write(chunk);
    if (text) yield text;
  }
  const rest = decoder.end();
  if (rest) yield rest;
}

/**
 * The same bytes as UTF-8, for the CSV scanner, which works on UTF-8 bytes: UTF-8 passes
 * through untouched (the scanner rejects invalid sequences itself); other encodings are
 * transcoded, their undecodable bytes written as 0xFF, which is never valid UTF-8.
 */
export async function* utf8Bytes(bytes: AsyncIterable<Buffer>, encoding: string, bomBytes = 0): AsyncGenerator<Buffer> {
  if (encoding === 'utf-8') {
    // The scanner skips a UTF-8 byte order mark itself.
    yield* bytes;
    return;
  }
  for await (const text of decodeText(bytes, encoding, bomBytes)) {
    if (!text.includes(UNDECODABLE)) {
      yield Buffer.from(text, 'utf8');
      continue;
    }
    const parts = text.split(UNDECODABLE);
    const out: Buffer[] = [];
    parts.forEach((part, i) => {
      if (i > 0) out.push(INVALID_UTF8);
      out.push(Buffer.from(part, 'utf8'));
    });
    yield Buffer.concat(out);
  }
}

const INVALID_UTF8 = Buffer.from([0xff]);

interface ChunkDecoder {
  write(chunk: Buffer): string;
  end(): string;
}

function textDecoder(encoding: string): ChunkDecoder {
  if (encoding === 'utf-8') return new Utf8Decoder();
  const decoder = iconv.getDecoder(encoding, { stripBOM: false });
  // iconv-lite writes U+FFFD for bytes the encoding leaves undefined (0x81 in Windows-1252, a
  // lone surrogate in UTF-16); none of those encodings can hold U+FFFD itself. UTF-16 can, and
  // a U+FFFD written in a UTF-16 file is taken as undecodable too.
  return {
    write: (chunk) => decoder.write(chunk).replaceAll('\uFFFD', UNDECODABLE),
    end: () => (decoder.end() ?? '').replaceAll('\uFFFD', UNDECODABLE),
  };
}

/**
 * UTF-8 with invalid sequences marked: chunks that are valid (nearly all) decode natively; a
 * chunk with a bad byte is decoded run by run. A character cut by the chunk's end waits for
 * the next chunk.
 */
class Utf8Decoder implements ChunkDecoder {
  private carry: Buffer = Buffer.alloc(0);

  write(chunk: Buffer): string {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const end = completeUtf8End(buf);
    this.carry = Buffer.from(buf.subarray(end));
    return decodeMarked(buf.subarray(0, end));
  }

  end(): string {
    const rest = decodeMarked(this.carry);
    this.carry = Buffer.alloc(0);
    return rest;
  }
}

/** Where the last complete UTF-8 character of buf ends (a cut sequence at the end is left over). */
export function completeUtf8End(buf: Buffer): number {
  const len = buf.length;
  for (let back = 1; back <= 3 && len - back >= 0; back++) {
    const b = buf[len - back];
    if ((b & 0xc0) === 0x80) continue;
    const size = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
    return size > back ? len - back : len;
  }
  return len;
}

function decodeMarked(buf: Buffer): string {
  if (isUtf8(buf)) return buf.toString('utf8');
  let out = '';
  let runStart = 0;
  let i = 0;
  while (i < buf.length) {
    const size = sequenceSize(buf, i);
    if (size > 0) {
      i += size;
      continue;
    }
    out += buf.toString('utf8', runStart, i) + UNDECODABLE;
    i++;
    runStart = i;
  }
  return out + buf.toString('utf8', runStart, i);
}

/** The length of the valid UTF-8 sequence at buf[i], or 0 if it is not one. */
function sequenceSize(buf: Buffer, i: number): number {
  const b = buf[i];
  if (b < 0x80) return 1;
  const size = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
  if (size === 0 || i + size > buf.length) return 0;
  return isUtf8(buf.subarray(i, i + size)) ? size : 0;
}
