import type pg from 'pg';

import type { LoadCounts } from './types.js';

/** The counts of a load that has counted nothing yet (queued, skipped, stopped). */
export const NO_COUNTS: LoadCounts = {
  read: 0,
  staged: 0,
  unparseable: 0,
  rejected: 0,
  duplicates: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
};

/** The counts of a load as the catalog has them. */
export async function loadCounts(pool: pg.Pool | pg.ClientBase, loadId: number): Promise<LoadCounts> {
  const { rows } = await pool.query('select * from ferry.loads where id = $1', [loadId]);
  return countsOfLoadRow(rows[0]);
}

/** The counts of a ferry.loads row (its columns rows_read, rows_staged, …). */
export function countsOfLoadRow(l: Record<string, unknown>): LoadCounts {
  return {
    read: Number(l.rows_read),
    staged: Number(l.rows_staged),
    unparseable: Number(l.parse_rejects),
    rejected: Number(l.rows_rejected),
    duplicates: Number(l.duplicates),
    inserted: Number(l.inserted),
    updated: Number(l.updated),
    unchanged: Number(l.unchanged),
  };
}
