import { PgferryError } from '../errors.js';
import type { DatabaseSource } from './database-url.js';
import { describeMysqlQuery, openMysqlSource } from './mysql-source.js';
import { describePostgresQuery, openPostgresSource } from './postgres-source.js';
import type { SourceLayout } from './source-layout.js';

/** How a source database's query is staged: its columns, named by the source. */
export async function readDatabaseLayout(
  source: DatabaseSource,
  query: string,
  options: { table?: string },
): Promise<SourceLayout> {
  let columns: string[];
  if (source.kind === 'postgres') {
    const client = await openPostgresSource(source.url, source.display);
    try {
      columns = await describePostgresQuery(client, query, source.display);
    } finally {
      await client.end().catch(() => {});
    }
  } else {
    const connection = await openMysqlSource(source.url, source.display);
    try {
      columns = (await describeMysqlQuery(connection, query, source.display)).map((c) => c.name);
    } finally {
      connection.destroy();
    }
  }
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
