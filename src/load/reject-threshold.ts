import type pg from 'pg';

import { loadCounts } from './load-counts.js';
import type { LoadOptions } from './types.js';

/** Why a load with this many rejects must promote nothing (--max-rejects, --max-reject-rate); undefined if it may. */
export function thresholdProblem(rejected: number, read: number, options: LoadOptions): string | undefined {
  if (options.maxRejects !== undefined && rejected > options.maxRejects) {
    return `${rejected} rows rejected, more than --max-rejects ${options.maxRejects}: nothing was promoted`;
  }
  if (options.maxRejectRate !== undefined && read > 0 && rejected / read > options.maxRejectRate) {
    return `${((rejected / read) * 100).toFixed(2)}% of rows rejected, more than --max-reject-rate ${(options.maxRejectRate * 100).toFixed(2)}%: nothing was promoted`;
  }
  return undefined;
}

/**
 * Why a load with this many lines superseded by a duplicate key must promote nothing
 * (--max-duplicates, --max-duplicate-rate); undefined if it may. Duplicates are no rejects: a
 * key given twice is often honest (a later line correcting an earlier one), so there is no
 * limit unless one is asked for.
 */
export function duplicateThresholdProblem(duplicates: number, read: number, options: LoadOptions): string | undefined {
  if (options.maxDuplicates !== undefined && duplicates > options.maxDuplicates) {
    return `${duplicates} rows superseded by a duplicate key, more than --max-duplicates ${options.maxDuplicates}: nothing was promoted`;
  }
  if (options.maxDuplicateRate !== undefined && read > 0 && duplicates / read > options.maxDuplicateRate) {
    return `${((duplicates / read) * 100).toFixed(2)}% of rows superseded by a duplicate key, more than --max-duplicate-rate ${(options.maxDuplicateRate * 100).toFixed(2)}%: nothing was promoted`;
  }
  return undefined;
}

/** After transform: the rejects and duplicates counted so far, against the thresholds, before promotion starts. */
export async function thresholdBeforePromotion(
  pool: pg.Pool,
  loadId: number,
  rowsRead: number,
  options: LoadOptions,
): Promise<string | undefined> {
  await pool.query('select ferry.count_rejects($1)', [loadId]);
  const before = await loadCounts(pool, loadId);
  return (
    thresholdProblem(before.unparseable + before.rejected, rowsRead, options) ??
    duplicateThresholdProblem(before.duplicates, rowsRead, options)
  );
}
