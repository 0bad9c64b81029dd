import type { DatabaseSource } from './database-url.js';
import { endSourceConnection, openSourceConnection, type SourceConnection } from './source-connection.js';

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
