import { CSV_SPECIAL, csvField } from '../sources/file/csv/csv-field.js';
import { type ExportColumn, type ExportRow, isNumberKind } from './export-column.js';
import { neutraliseFormula } from './formula-neutralise.js';
import type { TextFormat } from './text-writer.js';

export interface CsvFormatOptions {
  /** `,` for CSV, TAB for TSV. (Default: `,`) */
  delimiter?: ',' | '\t';
  /** Prefix formula-like text with `'` (see neutraliseFormula). (Default: true) */
  neutralise?: boolean;
}

/**
 * CSV (RFC 4180 quoting) or TSV: a header line of the column names, then one line a row, each
 * ending in LF. A field holding the delimiter, a double quote, CR or LF is quoted, its quotes
 * doubled. NULL is an empty field, the empty string `""`. Values are PostgreSQL's text output
 * (booleans `t`/`f`, timestamps ISO).
 *
 * @example
 *   // sku,name,price
 *   // A1,"Anvil, large",10.00
 *   // A2,"",
 */
export function csvFormat(columns: readonly ExportColumn[], options: CsvFormatOptions = {}): TextFormat {
  const delimiter = options.delimiter ?? ',';
  const field = (value: string): string => csvField(value, CSV_SPECIAL[delimiter]);
  // Numbers and booleans are never formulas: only other values are neutralised.
  const neutralised = columns.map((c) => options.neutralise !== false && !isNumberKind(c.kind) && c.kind !== 'boolean');
  return {
    begin: () => `${columns.map((c) => field(c.name)).join(delimiter)}\n`,
    row(values: ExportRow): string {
      let line = '';
      for (let i = 0; i < values.length; i++) {
        if (i > 0) line += delimiter;
        const value = values[i];
        if (value !== null) line += field(neutralised[i] ? neutraliseFormula(value) : value);
      }
      return `${line}\n`;
    },
    end: () => '',
  };
}
