import { isUtf8 } from 'node:buffer';

import chardet from 'chardet';
import iconv from 'iconv-lite';

import { completeUtf8End } from '../file/text-decoder.js';

/** A file's text encoding, and how many bytes of byte order mark it starts with. */
export interface DetectedEncoding {
  /** A name iconv-lite knows, lower case: `utf-8`, `utf-16le`, `utf-16be`, `windows-1252`, … */
  encoding: string;
  bomBytes: number;
}

/**
 * The encoding of a file from its first bytes: a byte order mark says it outright; otherwise
 * text that is valid UTF-8 is UTF-8, and anything else is what chardet makes of it. ISO-8859-1
 * is read as Windows-1252, which differs only where ISO-8859-1 has invisible control codes
 * (0x80–0x9F) and Windows-1252 has `€ ‚ „ … ‘ ’ “ ” –`: the characters such files really mean.
 *
 * @param sample the file's first bytes (64 KiB is plenty)
 * @example
 *   detectEncoding(Buffer.from('caf\xe9', 'latin1')) // { encoding: 'windows-1252', bomBytes: 0 }
 */
export function detectEncoding(sample: Buffer): DetectedEncoding {
  if (sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf) return { encoding: 'utf-8', bomBytes: 3 };
  if (sample[0] === 0xff && sample[1] === 0xfe) return { encoding: 'utf-16le', bomBytes: 2 };
  if (sample[0] === 0xfe && sample[1] === 0xff) return { encoding: 'utf-16be', bomBytes: 2 };
  const utf16 = utf16WithoutBom(sample);
  if (utf16) return { encoding: utf16, bomBytes: 0 };
  // A sample cut at an arbitrary byte may end inside a character: that is not invalid UTF-8.
  if (isUtf8(sample.subarray(0, completeUtf8End(sample)))) return { encoding: 'utf-8', bomBytes: 0 };
  const guess = chardet
    .analyse(sample)
    .map((match) => normalizeEncoding(match.name))
    .find((name) => name !== undefined && name !== 'utf-8');
  return { encoding: guess ?? 'windows-1252', bomBytes: 0 };
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
