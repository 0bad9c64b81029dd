import os from 'node:os';

import type pg from 'pg';

import { withTransaction } from '../db/database.js';
import { asUserError } from '../errors.js';

export interface RestoreConflict {
  table: string;
  /** Rows the restore wrote into the table. */
  restored: number;
  /** Of those, the rows still as it wrote them. */
  unchanged: number;
}

export interface RollbackRestoreResult {
  restoreId: number;
  /** `rolled_back`; `conflicts`: refused, nothing changed (force restores anyway); `already_rolled_back`. */
  outcome: 'rolled_back' | 'conflicts' | 'already_rolled_back';
  /** Rows the restore inserted, deleted again. */
  deleted: number;
  /** Rows the restore replaced (--replace), back again. */
  restored: number;
  conflicts: RestoreConflict[];
}

/**
 * rollbackRestore: undoes a restore in one transaction, as its tenant, as a load is rolled
 * back: the rows it inserted are deleted (children first) and the rows it replaced come back
 * (parents first). Rows it wrote that were changed or deleted since are conflicts: refused,
 * unless `force`.
 *
 * @example
 *   const { outcome } = await rollbackRestore(pool, 7);
 */
export async function rollbackRestore(
  pool: pg.Pool,
  restoreId: number,
  options: { force?: boolean } = {},
): Promise<RollbackRestoreResult> {
  try {
    const result = await withTransaction(pool, async (client) => {
      const { rows } = await client.query<{ result: Omit<RollbackRestoreResult, 'restoreId'> }>(
        'select ferry.rollback_restore($1, $2, $3) as result',
        [restoreId, options.force ?? false, os.userInfo().username],
      );
      return rows[0].result;
    });
    return {
      restoreId,
      outcome: result.outcome,
      deleted: Number(result.deleted),
      restored: Number(result.restored),
      conflicts: result.conflicts.map((c) => ({ ...c, restored: Number(c.restored), unchanged: Number(c.unchanged) })),
    };
  } catch (error) {
    throw asUserError(error);
  }
}
