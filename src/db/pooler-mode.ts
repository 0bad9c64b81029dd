import pg from 'pg';

import { PgferryError } from '../errors.js';

/**
 * How a connection of the pool keeps its server session:
 * - `session`: for as long as it is open (PostgreSQL itself, or a pooler in session mode);
 * - `transaction`: only for one transaction (PgBouncer's transaction mode, Supavisor's and
 *   Neon's pooled ports): between two transactions another client may get it;
 * - `statement`: only for one statement; transactions are refused.
 */
export type PoolerMode = 'session' | 'transaction' | 'statement';

export interface PoolerModeReport {
  mode: PoolerMode;
  /** Where the pool connects, `host:port`. */
  server: string;
  /** What was seen, in a few words, for a message. */
  explanation: string;
}

/**
 * Tells whether the pool's connections go through a pooler in transaction or statement mode,
 * with one extra connection and four short queries. Connection A reads its server process id
 * and stays checked out, idle; connection B reads its own, then A reads its own again. With a
 * session of its own, A keeps its server process, which no other connection can have. A
 * pooler in transaction mode gives A's server connection back to its pool at the end of each
 * transaction (a statement outside one) and hands it to the next client that asks (PgBouncer
 * reuses the last released one first): B gets A's process, or A gets another one. No false
 * alarm is possible; a pooler whose other clients keep every server connection busy may go
 * unseen.
 *
 * @example
 *   const { mode, explanation } = await detectPoolerMode(pool); // 'session' | 'transaction' | 'statement'
 */
export async function detectPoolerMode(pool: pg.Pool): Promise<PoolerModeReport> {
  const a = await pool.connect();
  // B is a client of its own, made as the pool makes its clients: a pool sized to one
  // connection would otherwise wait for A forever.
  const b = new pg.Client(pool.options);
  b.on('error', () => {});
  let failed = false;
  try {
    const server = serverOf(a);
    const first = await backendPid(a);
    await b.connect();
    const other = await backendPid(b);
    const again = await backendPid(a);
    if (other !== first && again === first) {
      return { mode: 'session', server, explanation: 'each connection keeps its own server session' };
    }
    const seen =
      other === first
        ? `a second connection was handed the first one's server session, process ${first}`
        : `one connection was moved from server process ${first} to ${again} between two statements`;
    // A pooler in statement mode refuses a transaction block (PgBouncer closes the connection).
    try {
      await b.query('begin');
      await b.query('rollback');
    } catch (error) {
      return {
        mode: 'statement',
        server,
        explanation: `${seen}, and "begin" was refused: ${(error as Error).message}`,
      };
    }
    return { mode: 'transaction', server, explanation: seen };
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    a.release(failed);
    await b.end().catch(() => {});
  }
}

/**
 * Refuses, with one line, a pool whose connections have no session of their own: pgferry
 * holds session advisory locks (a load's claim, a worker's liveness) and LISTENs (cancel,
 * progress) across transactions, and through a transaction-mode pooler those would be lost,
 * or land in another client's session, halfway through a load.
 */
export async function requireSessionPooling(pool: pg.Pool): Promise<void> {
  const { mode, server, explanation } = await detectPoolerMode(pool);
  if (mode === 'session') return;
  throw new PgferryError(
    `the connection at ${server} goes through a pooler in ${mode} mode (${explanation}), and pgferry needs a session of its own: use the pooler's session-mode port or connect to PostgreSQL directly`,
  );
}

async function backendPid(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  return rows[0].pid;
}

/** `host:port` of a connected client (node-postgres keeps them on the client). */
function serverOf(client: pg.PoolClient): string {
  const { host, port } = client as unknown as { host?: string; port?: number };
  return `${host ?? 'localhost'}:${port ?? 5432}`;
}
