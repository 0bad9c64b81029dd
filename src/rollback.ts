import os from 'node:os';

import type pg from 'pg';

import { withTransaction } from './db/database.js';
import { asUserError } from './errors.js';

/** How often the server checks, during the rollback, that its client is still there (ms). */
const CONNECTION_CHECK_MS = 1000;

export interface RollbackOptions {
  /** Restore even rows changed or deleted since the load wrote them. (Default: false) */
  force?: boolean;
}

export interface RollbackConflict {
  /** The row's key, as the load wrote it. */
  key: Record<string, unknown>;
  problem: 'changed since the load' | 'deleted since the load';
}

export interface RollbackResult {
  loadId: number;
  /**
   * `rolled_back`: done. `conflicts`: refused, nothing changed (see `conflicts`; `force`
   * restores anyway). `already_rolled_back`: a second rollback, a no-op.
   */
  outcome: 'rolled_back' | 'conflicts' | 'already_rolled_back';
  /** Rows the load inserted, deleted again. */
  deleted: number;
  /** Rows the load updated, given their before-image back. */
  restored: number;
  conflicts: RollbackConflict[];
}

/**
 * rollback: reverts a succeeded load from its undo log, in one transaction, as the load's
 * tenant (under its row-level security), holding the lock loads of that tenant and table
 * take. Rows changed since the load wrote them are conflicts: refused unless `force`.
 *
 * @example
 *   const result = await rollback(pool, 42);
 *   if (result.outcome === 'conflicts') console.log(result.conflicts);
 */
export async function rollback(pool: pg.Pool, loadId: number, options: RollbackOptions = {}): Promise<RollbackResult> {
  try {
    const { rows } = await withTransaction(
      pool,
      async (client) => {
        await checkClientConnection(client);
        return client.query<{
          outcome: RollbackResult['outcome'];
          deleted: string;
          restored: string;
          conflicts: RollbackConflict[];
        }>('select * from ferry.rollback_load($1, $2, $3)', [loadId, options.force ?? false, os.userInfo().username]);
      },
      { tenantCode: true },
    );
    const row = rows[0];
    return {
      loadId,
      outcome: row.outcome,
      deleted: Number(row.deleted),
      restored: Number(row.restored),
      conflicts: row.conflicts,
    };
  } catch (error) {
    throw asUserError(error);
  }
}

/**
 * A rollback whose client dies (a killed CLI, a lost network) stops on the server too: without
 * this the backend would run its long statement to the end, holding the tenant's lock, and
 * only then find nobody to commit for. It checks every second during the statement and aborts
 * the whole transaction, so nothing is half undone. A server whose platform cannot tell a
 * closed socket (it refuses the setting) rolls back without the check.
 */
async function checkClientConnection(client: pg.PoolClient): Promise<void> {
  await client.query('savepoint connection_check');
  try {
    await client.query(`set local client_connection_check_interval = ${CONNECTION_CHECK_MS}`);
    await client.query('release savepoint connection_check');
  } catch {
    await client.query('rollback to savepoint connection_check');
  }
}
