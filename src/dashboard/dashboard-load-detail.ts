import type pg from 'pg';

import { rejectReasons } from '../load/reject-reasons.js';
import type { RejectReason } from '../load/types.js';
import { catalogDb } from './catalog-db.js';
import { type DashboardLoad, loadQuery, toDashboardLoad } from './dashboard-load-query.js';
import { NotFound } from './not-found.js';

/** One equation of a load's counts, as ferry.verify_load checks it. */
export interface Reconciliation {
  /** `read = unparseable + staged` */
  equation: string;
  left: number;
  right: number;
  holds: boolean;
}

/** A load's page and `GET /api/loads/ID`. */
export interface DashboardLoadDetail extends DashboardLoad {
  target: string;
  format: string | null;
  fileSha256: string | null;
  reconciliation: Reconciliation[];
  /** Milliseconds per step, in the order the steps ran. */
  timings: { step: string; ms: number }[];
  reasons: RejectReason[];
  /** The functions compiled for this load (for an older load: those of its mapping version). */
  compiledSql: string | null;
}

const STEP_ORDER = ['stage', 'transform', 'promote', 'verify', 'cleanup'];

/**
 * One load with its counts as their reconciliation, step timings, reject reasons and the
 * compiled SQL of its mapping version. NotFound when there is no such load, or it is not the
 * tenant's.
 *
 * @example
 *   const load = await dashboardLoadDetail(pool, 42, { tenant: 'acme' });
 */
export async function dashboardLoadDetail(
  pool: pg.Pool,
  loadId: number,
  options: { tenant?: string } = {},
): Promise<DashboardLoadDetail> {
  const row = await loadQuery(catalogDb(pool), options.tenant)
    .select(['l.format', 'l.file_sha256', 'l.timings', 'l.compiled_sql', 'm.compiled_sql as mapping_sql'])
    .select(['m.target_schema', 'm.target_table'])
    .where('l.id', '=', String(loadId))
    .executeTakeFirst();
  if (!row) throw new NotFound(`no load ${loadId}`);
  const load = toDashboardLoad(row);
  const c = load.counts;
  // promoted = inserted + updated + unchanged by definition: only the two equations that can fail are shown.
  const promoted = c.inserted + c.updated + c.unchanged;
  const equation = (text: string, left: number, right: number): Reconciliation => ({
    equation: text,
    left,
    right,
    holds: left === right,
  });
  const timings = Object.entries(row.timings ?? {})
    .map(([step, ms]) => ({ step, ms: Number(ms) }))
    .sort((a, b) => rank(a.step) - rank(b.step));
  return {
    ...load,
    target: `${row.target_schema}.${row.target_table}`,
    format: row.format,
    fileSha256: row.file_sha256,
    reconciliation: [
      equation('read = unparseable + staged', c.read, c.unparseable + c.staged),
      equation('staged = rejected + duplicates + promoted', c.staged, c.rejected + c.duplicates + promoted),
    ],
    timings,
    reasons: await rejectReasons(pool, loadId, 20),
    compiledSql: row.compiled_sql ?? row.mapping_sql,
  };
}

function rank(step: string): number {
  const i = STEP_ORDER.indexOf(step);
  return i === -1 ? STEP_ORDER.length : i;
}
