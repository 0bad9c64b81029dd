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

/** The errors a single row can cause (data, constraint, a planned row not written): isolated, not fatal. */
const ROW_ERROR = /^(22|23|P0)/;

const RULE_BY_SQLSTATE: Record<string, string> = {
  [SQLSTATE.uniqueViolation]: 'unique',
  [SQLSTATE.foreignKeyViolation]: 'foreign_key',
  [SQLSTATE.notNullViolation]: 'not_null',
  [SQLSTATE.checkViolation]: 'check_constraint',
  [SQLSTATE.exclusionViolation]: 'exclusion',
  [SQLSTATE.noDataFound]: 'changed_during_load',
};

/**
 * promote: inside the caller's transaction, holding the tenant+target lock. What cannot
 * conflict goes in with one INSERT … SELECT (ferry.promote_in_bulk): every row when the
 * tenant has none in the target; else, once the load is planned, the rows whose keys are
 * absent. The rest (updates, conflicts), and everything when a bulk statement fails, is
 * promoted batch by batch, each under a SAVEPOINT: a failing batch is rolled back to its
 * savepoint and split in halves until the failing rows stand alone; those become rejects.
 * ferry.finish_promotion then records the counts and copies the rejects to the catalog.
 */
export async function promote(
  client: pg.ClientBase,
  loadId: number,
  options: { batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
): Promise<PromoteCounts> {
  const batchSize = options.batchSize ?? 10_000;
  const counts: PromoteCounts = { inserted: 0, updated: 0, unchanged: 0, conflicts: 0, failedRows: 0, batches: 0 };
  const add = ([inserted, updated, unchanged, conflicts]: number[]) => {
    counts.inserted += inserted;
    counts.updated += updated;
    counts.unchanged += unchanged;
    counts.conflicts += conflicts;
  };
  const allNew = await inBulk(client, loadId, false);
  if (allNew !== null && allNew !== 'failed') {
    add(allNew);
    options.onBatch?.(allNew[0], allNew[0]);
    await finish(client, loadId, counts);
    return counts;
  }
  let planned = await batchesOf(client, 'ferry.plan_promotion', loadId, batchSize);
  // Rows with nothing to write (unchanged, skipped) are counted, not planned.
  const { rows: unwritten } = await client.query<{ n: string }>('select ferry.unwritten_rows($1) as n', [loadId]);
  counts.unchanged += Number(unwritten[0].n);
  let done = Number(unwritten[0].n);
  const total = done + planned.reduce((sum, b) => sum + Number(b.rows), 0);
  // The tenant has rows in the target: the planned inserts in one statement (unless the first
  // bulk statement failed: the same rows would fail it again), then the rest (updates,
  // unchanged rows, conflicts) in batches.
  const absent = allNew === 'failed' ? null : await inBulk(client, loadId, true);
  if (absent !== null && absent !== 'failed') {
    add(absent);
    done += absent[0];
    options.onBatch?.(done, total);
    planned = await batchesOf(client, 'ferry.promotion_batches', loadId, batchSize);
  }
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
      if (!isDatabaseError(error) || !ROW_ERROR.test(error.code ?? '')) throw error;
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
  await finish(client, loadId, counts);
  return counts;
}

/** The batches of the load's plan: planned now (ferry.plan_promotion), or what is left of it (ferry.promotion_batches). */
async function batchesOf(
  client: pg.ClientBase,
  fn: 'ferry.plan_promotion' | 'ferry.promotion_batches',
  loadId: number,
  batchSize: number,
): Promise<Batch[]> {
  const { rows } = await client.query<Batch>(`select lo, hi, rows from ${fn}($1, $2)`, [loadId, batchSize]);
  return rows;
}

/**
 * ferry.promote_in_bulk under a savepoint: the counts of what it promoted; null when it
 * promoted nothing; 'failed' when its statement failed on a row (rolled back to the
 * savepoint: the batches will isolate that row).
 */
async function inBulk(client: pg.ClientBase, loadId: number, planned: boolean): Promise<number[] | null | 'failed'> {
  await client.query('savepoint pgferry_bulk');
  try {
    const { rows } = await client.query<{ counts: string[] | null }>('select ferry.promote_in_bulk($1, $2) as counts', [
      loadId,
      planned,
    ]);
    await client.query('release savepoint pgferry_bulk');
    return rows[0].counts?.map(Number) ?? null;
  } catch (error) {
    await client.query('rollback to savepoint pgferry_bulk');
    await client.query('release savepoint pgferry_bulk');
    if (!isDatabaseError(error) || !ROW_ERROR.test(error.code ?? '')) throw error;
    return 'failed';
  }
}

/** Records the promotion's counts and copies its rejects to the catalog. */
async function finish(client: pg.ClientBase, loadId: number, counts: PromoteCounts): Promise<void> {
  await client.query('select ferry.finish_promotion($1, $2, $3, $4)', [
    loadId,
    counts.inserted,
    counts.updated,
    counts.unchanged,
  ]);
}
