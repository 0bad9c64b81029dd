/**
 * How a writer treats a column, from its type (for a domain, its base type): `integer`
 * (smallint, integer, bigint), `numeric`, `float` (real, double precision), `boolean`,
 * `json` (json, jsonb) and `text` for everything else — dates, timestamps, arrays, enums —
 * written as PostgreSQL's text output.
 */
export type ValueKind = 'integer' | 'numeric' | 'float' | 'boolean' | 'json' | 'text';

/** One column of an export, as PostgreSQL described the query. */
export interface ExportColumn {
  name: string;
  /** The type as `format_type` writes it: `numeric(10,2)`, `timestamp with time zone`. */
  type: string;
  kind: ValueKind;
}

/** One row: each column's text as PostgreSQL outputs it, or null. */
export type ExportRow = (string | null)[];

/** Whether values of the kind are numbers (never formulas, unquoted in SQL and JSON). */
export function isNumberKind(kind: ValueKind): boolean {
  return kind === 'integer' || kind === 'numeric' || kind === 'float';
}

/** A number as JSON and SQL write it: PostgreSQL's digits, not NaN or Infinity. */
export const PLAIN_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
