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

/**
 * One connection to the source for a load: opened at once (beside pgferry's own work), used
 * to describe the query, then handed to the stage, which reads through it. A new connection
 * costs 10 to 15 ms (its authentication, a new backend), and the stage reads in the snapshot
 * its columns were described in.
 *
 * Whoever made the session ends it; the stage, once it took the connection, ends it itself.
 */
export class SourceSession {
  #opening: Promise<SourceConnection> | undefined;

  constructor(source: DatabaseSource) {
    this.#opening = openSourceConnection(source);
    // Awaited when used; a failed open is reported there, not as an unhandled rejection.
    this.#opening.catch(() => {});
  }

  /** The connection, to describe the query with: it stays with the session. */
  connection(): Promise<SourceConnection> {
    if (!this.#opening) throw new Error('the source connection was handed over already');
    return this.#opening;
  }

  /** Hands the connection over, once (the taker ends it); afterwards undefined. */
  take(): Promise<SourceConnection> | undefined {
    const opening = this.#opening;
    this.#opening = undefined;
    return opening;
  }

  /** Ends the connection, unless it was handed over. */
  async end(): Promise<void> {
    const opening = this.take();
    if (opening) await opening.then(endSourceConnection, () => {});
  }
}
