import type pg from 'pg';

import type { SyncListing } from '../syncs/list-syncs.js';
import { nextRun } from '../syncs/next-run.js';
import { catalogDb } from './catalog-db.js';

/**
 * A sync as the catalog last recorded it (`GET /api/syncs`): what `pgferry syncs` lists, with
 * its mapping, read from the catalog rather than from pgferry.yaml.
 */
export interface DashboardSync extends SyncListing {
  mapping: string;
}

/**
 * The syncs the catalog knows (as pgferry.yaml last declared them), by name, with cursor,
 * last run and outcome, and next run.
 *
 * @example
 *   const late = (await dashboardSyncs(pool)).filter((s) => s.lastOutcome === 'failed');
 */
export async function dashboardSyncs(pool: pg.Pool, options: { tenant?: string } = {}): Promise<DashboardSync[]> {
  let query = catalogDb(pool)
    .selectFrom('ferry.syncs as s')
    .innerJoin('ferry.tenants as t', 't.id', 's.tenant_id')
    .leftJoin('ferry.sync_state as st', 'st.sync_name', 's.name')
    .select([
      's.name',
      't.slug as tenant',
      's.mapping',
      's.mode',
      's.schedule',
      's.paused_at',
      'st.cursor',
      'st.last_load_id',
      'st.last_finished_at',
      'st.last_outcome',
      'st.last_error',
    ])
    .orderBy('s.name');
  if (options.tenant !== undefined) query = query.where('t.slug', '=', options.tenant);
  const rows = await query.execute();
  return rows.map((r) => ({
    name: r.name,
    tenant: r.tenant,
    mapping: r.mapping,
    mode: r.mode as SyncListing['mode'],
    schedule: r.schedule,
    paused: r.paused_at !== null,
    cursor: r.cursor,
    lastLoad: r.last_load_id === null ? null : Number(r.last_load_id),
    lastRun: r.last_finished_at,
    lastOutcome: r.last_outcome,
    lastError: r.last_error,
    nextRun: r.schedule && r.paused_at === null ? nextRun(r.schedule) : null,
  }));
}
