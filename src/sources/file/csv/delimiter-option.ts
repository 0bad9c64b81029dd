import { PgferryError } from '../../../errors.js';

/**
 * A `--delimiter` the CSV reader (and COPY) can take: one ASCII character, not a quote or a
 * line break; anything else is an input error.
 */
export function refuseBadDelimiter(delimiter: string | undefined): void {
  if (delimiter === undefined) return;
  if (Buffer.byteLength(delimiter) !== 1 || /["\r\n]/.test(delimiter)) {
    throw new PgferryError(
      `--delimiter must be one ASCII character other than a quote or a line break, not ${JSON.stringify(delimiter)}`,
    );
  }
}
