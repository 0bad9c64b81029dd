import { isUtf8 } from 'node:buffer';

import chardet from 'chardet';
import iconv from 'iconv-lite';

import { completeUtf8End } from '../file/text-decoder.js';

/** A file's text encoding, and how many bytes of byte order mark it starts with. */
export interface DetectedEncoding {
  /** A name iconv-lite knows, lower case: `utf-8`, `utf-16le`, `utf-16be`, `windows-1252`, … */
  encoding: string;
  bomBytes: number;
  /** Why this encoding, for the load's summary: `valid UTF-8 but 1 invalid byte (line 17)`. */
  reason: string;
}

/**
 * How many invalid bytes a sample of otherwise valid UTF-8 may hold and still be UTF-8: one in a
 * thousand of its multi-byte sequences, or a few (up to this many, and no more than it has valid
 * multi-byte sequences). Windows-1252 text read as UTF-8 has an invalid byte at nearly every
 * accented letter and valid sequences only by accident, so it stays far above this.
 */
const FEW_INVALID_BYTES = 16;

/**
 * The encoding of a file from its first bytes: a byte order mark says it outright; otherwise
 * text that is valid UTF-8 is UTF-8, and so is text that is valid UTF-8 but for a few bytes (the
 * lines holding them are rejected: decoding the whole file as Windows-1252 instead would turn
 * every `café` into `cafÃ©` without a word). Anything else is what chardet makes of it.
 * ISO-8859-1 is read as Windows-1252, which differs only where ISO-8859-1 has invisible control
 * codes (0x80–0x9F) and Windows-1252 has `€ ‚ „ … ‘ ’ “ ” –`: the characters such files really mean.
 *
 * @param sample the file's first bytes (64 KiB is plenty)
 * @example
 *   detectEncoding(Buffer.from('caf\xe9', 'latin1')).encoding // 'windows-1252'
 */
export function detectEncoding(sample: Buffer): DetectedEncoding {
  if (sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf) {
    return { encoding: 'utf-8', bomBytes: 3, reason: 'UTF-8 byte order mark' };
  }
  if (sample[0] === 0xff && sample[1] === 0xfe) return { encoding: 'utf-16le', bomBytes: 2, reason: 'byte order mark' };
  if (sample[0] === 0xfe && sample[1] === 0xff) return { encoding: 'utf-16be', bomBytes: 2, reason: 'byte order mark' };
  const utf16 = utf16WithoutBom(sample);
  if (utf16) return { encoding: utf16, bomBytes: 0, reason: 'a NUL in every other byte, no byte order mark' };
  // A sample cut at an arbitrary byte may end inside a character: that is not invalid UTF-8.
  const whole = sample.subarray(0, completeUtf8End(sample));
  if (isUtf8(whole)) {
    const ascii = !whole.some((b) => b >= 0x80);
    return { encoding: 'utf-8', bomBytes: 0, reason: ascii ? 'ASCII only' : 'valid UTF-8' };
  }
  const tally = utf8Tally(whole);
  const allowed = Math.max(Math.min(FEW_INVALID_BYTES, tally.validMultiByte), tally.validMultiByte / 1000);
  if (tally.validMultiByte > 0 && tally.invalidBytes <= allowed) {
    const lines =
      tally.invalidLines.length > 3
        ? `lines ${tally.invalidLines.slice(0, 3).join(', ')}, …`
        : `line${tally.invalidLines.length > 1 ? 's' : ''} ${tally.invalidLines.join(', ')}`;
    return {
      encoding: 'utf-8',
      bomBytes: 0,
      reason: `valid UTF-8 but ${plural(tally.invalidBytes, 'invalid byte')} (${lines}: rejected)`,
    };
  }
  const match = chardet
    .analyse(sample)
    .map((m) => ({ ...m, normalized: normalizeEncoding(m.name) }))
    .find((m) => m.normalized !== undefined && m.normalized !== 'utf-8');
  const notUtf8 = `not UTF-8: ${plural(tally.invalidBytes, 'invalid byte')}, ${plural(tally.validMultiByte, 'valid multi-byte sequence')}`;
  const looksLike = `its high bytes read as ${match ? `${match.name} (chardet)` : 'Western European text'}`;
  return { encoding: match?.normalized ?? 'windows-1252', bomBytes: 0, reason: `${notUtf8}; ${looksLike}` };
}

/** `1 invalid byte`, `3 invalid bytes`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** What reading a sample as UTF-8 finds: valid sequences of 2–4 bytes, bytes that fit none, and their lines. */
function utf8Tally(buf: Buffer): { validMultiByte: number; invalidBytes: number; invalidLines: number[] } {
  let validMultiByte = 0;
  let invalidBytes = 0;
  const invalidLines: number[] = [];
  let line = 1;
  let i = 0;
  while (i < buf.length) {
    const b = buf[i];
    if (b < 0x80) {
      if (b === 0x0a) line++;
      i++;
      continue;
    }
    const size = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (size > 0 && i + size <= buf.length && isUtf8(buf.subarray(i, i + size))) {
      validMultiByte++;
      i += size;
      continue;
    }
    invalidBytes++;
    if (invalidLines.at(-1) !== line) invalidLines.push(line);
    i++;
  }
  return { validMultiByte, invalidBytes, invalidLines };
}

/** The iconv-lite name of an encoding a user or chardet named, or undefined if unknown. */
export function normalizeEncoding(name: string): string | undefined {
  const lower = name.trim().toLowerCase();
  if (lower === 'utf8' || lower === 'utf-8') return 'utf-8';
  if (lower === 'iso-8859-1' || lower === 'latin1' || lower === 'ascii' || lower === 'us-ascii') {
    return 'windows-1252';
  }
  if (lower === 'utf16le' || lower === 'utf-16le' || lower === 'utf-16') return 'utf-16le';
  if (lower === 'utf16be' || lower === 'utf-16be') return 'utf-16be';
  return iconv.encodingExists(lower) ? lower : undefined;
}

/** Text that is mostly ASCII, written as UTF-16 without a byte order mark, has a NUL in every other byte. */
function utf16WithoutBom(sample: Buffer): string | undefined {
  const n = Math.min(sample.length, 4096) & ~1;
  if (n < 4) return undefined;
  let evenZeros = 0;
  let oddZeros = 0;
  for (let i = 0; i < n; i += 2) {
    if (sample[i] === 0) evenZeros++;
    if (sample[i + 1] === 0) oddZeros++;
  }
  const pairs = n / 2;
  if (oddZeros > pairs * 0.6 && evenZeros < pairs * 0.1) return 'utf-16le';
  if (evenZeros > pairs * 0.6 && oddZeros < pairs * 0.1) return 'utf-16be';
  return undefined;
}
