import type pg from 'pg';

import type { RejectReason } from './types.js';

/** The most frequent reject reasons of a load. */
export async function rejectReasons(pool: pg.Pool, loadId: number, limit = 10): Promise<RejectReason[]> {
  const { rows } = await pool.query<RejectReason>(
    `select rule, column_name as column, count(*)::integer as count, min(message) as example
     from ferry.rejects
     where load_id = $1
     group by rule, column_name
     order by count(*) desc, rule
     limit $2`,
    [loadId, limit],
  );
  return rows;
}
