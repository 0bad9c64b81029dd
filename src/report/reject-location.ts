import type pg from 'pg';

import { outputSources } from '../mappings/output-sources.js';
import type { SourceLayout } from '../sources/source-layout.js';

/** Says where in its file a reject's row is: `line 12`, `record 12`, `Products!C12` (a row: `Products!A12`). */
export type RejectLocator = (line: number | null, column: string | null) => string | null;

/**
 * A load's way of naming where a reject is, from how its file was read: a line for CSV and
 * NDJSON, a record for JSON arrays, XML and SQL dumps, a cell for XLSX (the column's letter
 * when the reject names a column that comes from one source column, else the row's first cell).
 */
export async function rejectLocator(pool: pg.Pool, loadId: number): Promise<RejectLocator> {
  const { rows } = await pool.query<{
    format: string | null;
    source: SourceLayout | null;
    columns: string[] | null;
    select_sql: string;
  }>(
    `select l.format, l.options -> 'source' as source, l.columns, m.select_sql
     from ferry.loads l join ferry.mappings m on m.id = l.mapping_id
     where l.id = $1`,
    [loadId],
  );
  const load = rows[0];
  if (!load) return () => null;
  const format = load.source?.format ?? load.format ?? 'csv';
  if (format === 'csv' || format === 'ndjson') return (line) => (line === null ? null : `line ${line}`);
  if (format !== 'xlsx' || !load.source || !load.columns) {
    return (line) => (line === null ? null : `record ${line}`);
  }

  const { cellAddress } = await import('../sources/file/xlsx/xlsx-reader.js');
  const sheet = String(load.source.sheet ?? 'Sheet1');
  const letters = load.source.letters ?? [];
  const staged = load.columns;
  const letterOf = new Map(staged.map((name, i) => [name, letters[i]]));
  const fromOutput = outputSources(load.select_sql, staged);
  return (line, column) => {
    if (line === null) return null;
    const source = column === null ? undefined : letterOf.has(column) ? column : fromOutput.get(column);
    const letter = source === undefined ? undefined : letterOf.get(source);
    // Without a column: the row's first cell (`Products!A12`), where a spreadsheet's Go To
    // lands on the row; `Products!12:12` is exact but reads as a time to most people.
    return cellAddress(sheet, letter ?? letters[0] ?? 'A', line);
  };
}
