import { sql } from 'kysely';
import type pg from 'pg';

import { catalogDb } from './catalog-db.js';
import { type DashboardLoad, loadQuery, toDashboardLoad } from './dashboard-load-query.js';

export interface DashboardLoadsOptions {
  /** Only this tenant's loads (the dashboard's --tenant, or a filter). */
  tenant?: string;
  /** Only loads in this status, as ferry.load_status() shows it (`failed`, `interrupted`, …). */
  status?: string;
  /** How many, newest first (default 50, at most 500). */
  limit?: number;
}

/**
 * The dashboard's loads page and `GET /api/loads`: recent loads, newest first, with counts
 * and the progress of running ones.
 *
 * @example
 *   const failed = await dashboardLoads(pool, { tenant: 'acme', status: 'failed' });
 */
export async function dashboardLoads(pool: pg.Pool, options: DashboardLoadsOptions = {}): Promise<DashboardLoad[]> {
  let query = loadQuery(catalogDb(pool), options.tenant);
  if (options.status !== undefined) query = query.where(sql<string>`ferry.load_status(l)`, '=', options.status);
  const rows = await query
    .orderBy('l.id', 'desc')
    .limit(Math.min(options.limit ?? 50, 500))
    .execute();
  return rows.map(toDashboardLoad);
}
