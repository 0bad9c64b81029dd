import { csvField } from '../sources/file/csv/csv-field.js';

/**
 * One CSV line (RFC 4180) that pgferry's CSV reader gives back as it was: NULL as nothing, the
 * empty string as `""`, fields with a quote, comma or line break quoted.
 */
export function csvLine(values: (string | number | null | undefined)[]): string {
  return values.map((v) => (v === null || v === undefined ? '' : csvField(String(v)))).join(',');
}
