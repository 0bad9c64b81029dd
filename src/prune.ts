import os from 'node:os';

import type pg from 'pg';

export interface PruneResult {
  /** Loads whose undo log was removed: they can no longer be rolled back. */
  loads: number;
  undoRows: number;
}

/**
 * pruneUndo: removes the undo logs of loads finished more than `olderThanDays` days ago.
 *
 * @example
 *   await pruneUndo(pool, { olderThanDays: 30 });
 */
export async function pruneUndo(pool: pg.Pool, options: { olderThanDays: number }): Promise<PruneResult> {
  const { rows } = await pool.query<{ loads: string; undo_rows: string }>(
    `select * from ferry.prune_undo(now() - make_interval(days => $1), $2)`,
    [options.olderThanDays, os.userInfo().username],
  );
  return { loads: Number(rows[0].loads), undoRows: Number(rows[0].undo_rows) };
}
