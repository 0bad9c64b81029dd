import type pg from 'pg';

import type { RejectReason } from './types.js';

/** The most frequent reject reasons of a load. */
export async function rejectReasons(pool: pg.Pool, loadId: number, limit = 10): Promise<RejectReason[]> {
  const { rows } = await pool.query<RejectReason>(
    `select rule, column_name as column, sum(n)::integer as count, min(example) as example
     from (
       select rule, column_name, count(*) as n, min(message) as example
       from ferry.rejects
       where load_id = $1
       group by rule, column_name
       union all
       select 'duplicate', null, sum(cardinality(lines)),
              min(format('key appears on %s lines; line %s wins', cardinality(lines) + 1, kept_line))
       from ferry.duplicates
       where load_id = $1
       having count(*) > 0
     ) as r
     group by rule, column_name
     order by sum(n) desc, rule
     limit $2`,
    [loadId, limit],
  );
  return rows;
}
