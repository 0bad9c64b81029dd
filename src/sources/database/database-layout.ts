import { PgferryError } from '../../errors.js';
import type { SourceLayout } from '../source-layout.js';
import type { DatabaseSource } from './database-url.js';
import { describeMysqlQuery } from './mysql-source.js';
import { describePostgresQuery } from './postgres-source.js';
import type { SourceConnection } from './source-connection.js';

/** How a source database's query is staged: its columns, named by the source (described on `connection`). */
export async function readDatabaseLayout(
  source: DatabaseSource,
  query: string,
  options: { table?: string },
  connection: SourceConnection,
): Promise<SourceLayout> {
  const columns =
    connection.kind === 'postgres'
      ? await describePostgresQuery(connection.client, query, source.display)
      : (await describeMysqlQuery(connection.connection, query, source.display)).map((c) => c.name);
  return databaseLayout(source, query, options, columns);
}

/** The layout of a source query whose columns are known (a sync described it already). */
export function databaseLayout(
  source: DatabaseSource,
  query: string,
  options: { table?: string },
  columns: string[],
): SourceLayout {
  if (columns.length === 0) throw new PgferryError(`the source query returns no columns: ${query}`);
  return { format: source.kind, compression: 'none', from: source.display, table: options.table, query, columns };
}
