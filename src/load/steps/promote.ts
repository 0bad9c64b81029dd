import type pg from 'pg';

import { isDatabaseError, SQLSTATE } from '../../errors.js';

export interface PromoteCounts {
  inserted: number;
  updated: number;
  unchanged: number;
  conflicts: number;
  /** Rows that failed even alone in their batch (constraint, trigger). */
  failedRows: number;
  batches: number;
}

interface Batch {
  lo: number;
  hi: number;
  rows: number;
}

const RULE_BY_SQLSTATE: Record<string, string> = {
  [SQLSTATE.uniqueViolation]: 'unique',
  [SQLSTATE.foreignKeyViolation]: 'foreign_key',
  [SQLSTATE.notNullViolation]: 'not_null',
  [SQLSTATE.checkViolation]: 'check_constraint',
  [SQLSTATE.exclusionViolation]: 'exclusion',
  [SQLSTATE.noDataFound]: 'changed_during_load',
};

/**
 * promote: inside the caller's transaction, plans the load (holding the tenant+target lock),
 * then inserts and updates batch by batch, each under a SAVEPOINT. A failing batch is rolled back to its
 * savepoint and split in halves until the failing rows stand alone; those become rejects.
 * ferry.finish_promotion then records the counts and copies the undo log and rejects to the catalog.
 */
export async function promote(
  client: pg.ClientBase,
  loadId: number,
  options: { batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
): Promise<PromoteCounts> {
  const { rows: planned } = await client.query<Batch>('select lo, hi, rows from ferry.plan_promotion($1, $2)', [
    loadId,
    options.batchSize ?? 10_000,
  ]);
  const counts: PromoteCounts = { inserted: 0, updated: 0, unchanged: 0, conflicts: 0, failedRows: 0, batches: 0 };
  const total = planned.reduce((sum, b) => sum + Number(b.rows), 0);
  let done = 0;
  const stack = [...planned].reverse();
  while (stack.length > 0) {
    const batch = stack.pop()!;
    await client.query('savepoint pgferry_batch');
    let promoted: number[];
    try {
      const { rows } = await client.query<{ counts: number[] }>('select ferry.promote_batch($1, $2, $3) as counts', [
        loadId,
        batch.lo,
        batch.hi,
      ]);
      await client.query('release savepoint pgferry_batch');
      promoted = rows[0].counts.map(Number);
    } catch (error) {
      await client.query('rollback to savepoint pgferry_batch');
      await client.query('release savepoint pgferry_batch');
      // Only errors a single row can cause are isolated; anything else fails the load.
      if (!isDatabaseError(error) || !/^(22|23|P0)/.test(error.code ?? '')) throw error;
      if (Number(batch.rows) > 1) {
        const { rows: halves } = await client.query<Batch>('select lo, hi, rows from ferry.split_batch($1, $2, $3)', [
          loadId,
          batch.lo,
          batch.hi,
        ]);
        stack.push(...halves.reverse());
        continue;
      }
      const rule = RULE_BY_SQLSTATE[error.code ?? ''];
      await client.query('select ferry.reject_promotion_row($1, $2, $3, $4, $5)', [
        loadId,
        batch.lo,
        rule ?? 'error',
        error.constraint ?? error.column ?? null,
        error.detail ? `${error.message}: ${error.detail}` : error.message,
      ]);
      counts.failedRows++;
      done += 1;
      options.onBatch?.(done, total);
      continue;
    }
    // Outside the savepoint: onBatch may stop the load here (pgferry cancel).
    const [inserted, updated, unchanged, conflicts] = promoted;
    counts.inserted += inserted;
    counts.updated += updated;
    counts.unchanged += unchanged;
    counts.conflicts += conflicts;
    counts.batches++;
    done += Number(batch.rows);
    options.onBatch?.(done, total);
  }
  await client.query('select ferry.finish_promotion($1, $2, $3, $4)', [
    loadId,
    counts.inserted,
    counts.updated,
    counts.unchanged,
  ]);
  return counts;
}
