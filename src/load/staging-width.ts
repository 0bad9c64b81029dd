import { PgferryError } from '../errors.js';
import type { SourceLayout } from '../sources/source-layout.js';

/** PostgreSQL's limit on a table's columns (MaxHeapAttributeNumber). */
const MAX_TABLE_COLUMNS = 1600;

/** A staging table has one text column per source column, plus `_line`. */
export const MAX_SOURCE_COLUMNS = MAX_TABLE_COLUMNS - 1;

/**
 * Refuses, before anything is registered, a source wider than a staging table can be: without
 * this, PostgreSQL's "tables can have at most 1600 columns" surfaced later, blamed on the mapping.
 *
 * @example
 *   refuseTooWideForStaging(layout, 'wide.csv'); // wide.csv: the file has 5000 columns; …
 */
export function refuseTooWideForStaging(layout: SourceLayout, file: string): void {
  const count = layout.columns.length;
  if (count <= MAX_SOURCE_COLUMNS) return;
  const what = layout.from === undefined ? 'the file' : 'the source query';
  throw new PgferryError(
    `${what} has ${count} columns; pgferry can stage at most ${MAX_SOURCE_COLUMNS} (a PostgreSQL table holds at most ${MAX_TABLE_COLUMNS}, and staging adds the line number)`,
    {
      location: layout.from === undefined ? { file } : {},
      hint: 'load fewer columns: cut the file, or select them in --query',
    },
  );
}
