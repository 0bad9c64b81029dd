/** Characters that make a CSV field quoted, by delimiter. */
export const CSV_SPECIAL = { ',': /[",\r\n]/, '\t': /["\t\r\n]/ } as const;

/**
 * One CSV field as `COPY (FORMAT csv, NULL '')` reads it back: the empty string quoted (`""`,
 * so that it is not NULL, which the caller writes as nothing), a field holding the delimiter,
 * a quote, CR or LF quoted with its quotes doubled, anything else as it is.
 *
 * @example
 *   csvField('a, b') // '"a, b"'
 *   csvField('')     // '""'
 */
export function csvField(value: string, special: RegExp = CSV_SPECIAL[',']): string {
  return value === '' ? '""' : special.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}
