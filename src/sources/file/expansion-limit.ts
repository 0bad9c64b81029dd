import { PgferryError } from '../../errors.js';

/**
 * How far compressed input (gzip, zip) may expand before reading stops: a few kilobytes of
 * gzip can hold gigabytes of identical lines, which would fill the staging table and the
 * catalog. Honest files stay far below the default: measured with gzip -9, a CSV of one row
 * repeated (but for its id) compresses about 25 times, a sparse CSV of empty columns about 26,
 * a fixed-width export padded with 200 spaces a line about 70; identical lines, what a
 * decompression bomb is made of, about 400, and gzip's limit is about 1030.
 */
export interface ExpansionLimit {
  /** The most the data may expand: uncompressed bytes per compressed byte. (Default: 200) */
  maxExpansion?: number;
  /** The ratio is checked only once this many bytes have come out. (Default: 1 GiB) */
  expansionCheckedAfter?: number;
}

export const DEFAULT_MAX_EXPANSION = 200;
export const DEFAULT_EXPANSION_CHECKED_AFTER = 1024 ** 3;
export const EXPANSION_CHECKED_AFTER_TEXT = '1 GiB';

/**
 * A check to call as uncompressed bytes come out: it throws, naming the file, the ratio and
 * the option that raises it, once more than `expansionCheckedAfter` bytes have come out at
 * more than `maxExpansion` times the compressed bytes read so far.
 */
export function expansionCheck(
  file: string,
  wrapper: 'gzip' | 'zip',
  limit: ExpansionLimit,
  compressedBytes: () => number,
): (uncompressed: number) => void {
  const ratio = limit.maxExpansion ?? DEFAULT_MAX_EXPANSION;
  const after = limit.expansionCheckedAfter ?? DEFAULT_EXPANSION_CHECKED_AFTER;
  return (uncompressed) => {
    if (uncompressed <= after) return;
    const compressed = Math.max(compressedBytes(), 1);
    if (uncompressed / compressed > ratio) throw expansionError(file, wrapper, uncompressed, compressed, ratio);
  };
}

export function expansionError(
  file: string,
  wrapper: 'gzip' | 'zip',
  uncompressed: number,
  compressed: number,
  ratio: number,
): PgferryError {
  return new PgferryError(
    `the ${wrapper} data expands ${Math.round(uncompressed / compressed)}:1 (${megabytes(uncompressed)} from ${megabytes(compressed)}), ` +
      `more than --max-expansion ${ratio}: stopped, as a possible decompression bomb; raise --max-expansion if the file is honest`,
    { location: { file } },
  );
}

function megabytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${(bytes / 1024).toFixed(1)} KB`;
}
