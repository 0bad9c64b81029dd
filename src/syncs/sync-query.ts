import mysql from 'mysql2';

import type { SyncOfLoad } from '../load/types.js';

export type CursorType = NonNullable<SyncOfLoad['cursorType']>;

const CURSOR_PARAMETER = /(?<![:\w]):cursor\b/g;

/** How PostgreSQL values of a source column compare, from its type OID. */
export function cursorTypeOfPostgres(typeId: number): CursorType {
  switch (typeId) {
    case 1184:
      return 'timestamptz';
    case 1114:
      return 'timestamp';
    case 1082:
      return 'date';
    case 20: // int8
    case 21: // int2
    case 23: // int4
    case 26: // oid
    case 700: // float4
    case 701: // float8
    case 1700: // numeric
      return 'numeric';
    default:
      return 'text';
  }
}

/** How MySQL values of a source column compare, from its column type (mysql2's numbers). */
export function cursorTypeOfMysql(columnType: number): CursorType {
  switch (columnType) {
    case 7: // TIMESTAMP
    case 12: // DATETIME
    case 17: // TIMESTAMP2
    case 18: // DATETIME2
      return 'timestamp';
    case 10: // DATE
    case 14: // NEWDATE
      return 'date';
    case 0: // DECIMAL
    case 1: // TINY
    case 2: // SHORT
    case 3: // LONG
    case 4: // FLOAT
    case 5: // DOUBLE
    case 8: // LONGLONG
    case 9: // INT24
    case 13: // YEAR
    case 246: // NEWDECIMAL
      return 'numeric';
    default:
      return 'text';
  }
}

/** Whether the query places the cursor itself (`where updated_at >= :cursor`). */
export function usesCursorParameter(query: string): boolean {
  return new RegExp(CURSOR_PARAMETER.source).test(query);
}

/** The query with `:cursor` as NULL: what the source describes (its columns, not its rows). */
export function queryToDescribe(query: string): string {
  return query.replace(CURSOR_PARAMETER, 'null');
}

/**
 * The query of one run of a sync. `cursor` null is a full pull: a query with `:cursor` gets the
 * lowest value of the cursor's type, any other query is read whole. Otherwise the rows at or
 * after the cursor (inclusive: rows that share the cursor's value are read again, and their
 * keys make them unchanged): `:cursor` replaced by the value as a literal of the source's
 * dialect, or the condition added around the query.
 */
export function incrementQuery(
  kind: 'postgres' | 'mysql',
  query: string,
  cursor: { column: string; type: CursorType; value: string | null },
): string {
  const parameterised = usesCursorParameter(query);
  if (cursor.value === null) {
    return parameterised ? query.replace(CURSOR_PARAMETER, lowestLiteral(kind, cursor.type)) : query;
  }
  const literal = cursorLiteral(kind, cursor.type, cursor.value);
  if (parameterised) return query.replace(CURSOR_PARAMETER, () => literal);
  const column =
    kind === 'postgres' ? `"${cursor.column.replaceAll('"', '""')}"` : `\`${cursor.column.replaceAll('`', '``')}\``;
  return `select * from (\n${query}\n) as pgferry_increment where pgferry_increment.${column} >= ${literal}`;
}

/** A cursor value as a literal of the source's SQL: a number as it is, anything else quoted. */
export function cursorLiteral(kind: 'postgres' | 'mysql', type: CursorType, value: string): string {
  if (type === 'numeric' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value)) return value;
  if (kind === 'mysql') return mysql.escape(value);
  // E'' reads the same whatever standard_conforming_strings says.
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** A value no other of the type is below, for a full pull through a query with `:cursor`. */
function lowestLiteral(kind: 'postgres' | 'mysql', type: CursorType): string {
  switch (type) {
    case 'numeric':
      return '-1e308';
    case 'text':
      return "''";
    default:
      if (kind === 'postgres') return "'-infinity'";
      return type === 'date' ? "'0000-00-00'" : "'0000-00-00 00:00:00'";
  }
}
