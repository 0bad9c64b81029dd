import type mysql from 'mysql2';
import type pg from 'pg';

import type { DatabaseSource } from './database-url.js';
import { openMysqlSource } from './mysql-source.js';
import { openPostgresSource } from './postgres-source.js';

/** An open connection to a source database, in its read-only snapshot transaction. */
export type SourceConnection =
  { kind: 'postgres'; client: pg.Client } | { kind: 'mysql'; connection: mysql.Connection };

export async function openSourceConnection(source: DatabaseSource): Promise<SourceConnection> {
  return source.kind === 'postgres'
    ? { kind: 'postgres', client: await openPostgresSource(source.url, source.display) }
    : { kind: 'mysql', connection: await openMysqlSource(source.url, source.display) };
}

export async function endSourceConnection(source: SourceConnection): Promise<void> {
  if (source.kind === 'postgres') await source.client.end().catch(() => {});
  else source.connection.destroy();
}
