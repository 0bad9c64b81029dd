import { type ExportColumn, type ExportRow, isNumberKind, PLAIN_NUMBER, type ValueKind } from './export-column.js';
import type { TextFormat } from './text-writer.js';

/**
 * JSON: `[`, one object per line separated by `,` and a line break, `]`. With `ndjson`, one
 * object per line and nothing else. Keys are the column names, in order. Numbers (integer,
 * numeric, real, double precision) are JSON numbers written with PostgreSQL's own digits,
 * never passed through a JavaScript number (NaN and Infinity, which JSON lacks, are strings);
 * booleans are true/false; json and jsonb are embedded as JSON; everything else is a string
 * (timestamps in PostgreSQL's ISO form); NULL is null.
 *
 * @example
 *   // [
 *   // {"sku":"A1","price":12345678901234567890.123456789,"tags":["a","b"]},
 *   // {"sku":"A2","price":null,"tags":null}
 *   // ]
 */
export function jsonFormat(columns: readonly ExportColumn[], options: { ndjson?: boolean } = {}): TextFormat {
  const keys = columns.map((c) => `${JSON.stringify(c.name)}:`);
  const kinds = columns.map((c) => c.kind);
  const object = (values: ExportRow): string => {
    let text = '{';
    for (let i = 0; i < values.length; i++) {
      if (i > 0) text += ',';
      text += keys[i] + jsonValue(values[i], kinds[i]);
    }
    return `${text}}`;
  };
  if (options.ndjson) {
    return { begin: () => '', row: (values) => `${object(values)}\n`, end: () => '' };
  }
  let empty = true;
  return {
    begin: () => '[\n',
    row(values, index) {
      empty = false;
      return (index === 1 ? '' : ',\n') + object(values);
    },
    end: () => (empty ? ']\n' : '\n]\n'),
  };
}

/** One value as JSON text. */
export function jsonValue(value: string | null, kind: ValueKind): string {
  if (value === null) return 'null';
  if (isNumberKind(kind)) return PLAIN_NUMBER.test(value) ? value : JSON.stringify(value);
  switch (kind) {
    case 'boolean':
      return value === 't' ? 'true' : 'false';
    case 'json':
      // Valid JSON has line breaks only between tokens (a string cannot hold a raw one), and a
      // json column keeps its input's: replaced by spaces, an object stays on one line.
      return value.replace(/[\r\n]/g, ' ');
    default:
      return JSON.stringify(value);
  }
}
