import { type Kysely, sql } from 'kysely';

import type { LoadSummary } from '../catalog.js';
import { countsOfLoadRow } from '../load/load-counts.js';
import type { LoadCounts } from '../load/types.js';
import type { CatalogTables } from './catalog-tables.js';

/**
 * A load as the dashboard lists it: what `pgferry loads` shows of it (status as
 * ferry.load_status() has it: `interrupted` for a load in progress whose process is gone),
 * its counts, and where a running one is.
 */
export interface DashboardLoad extends Pick<
  LoadSummary,
  'id' | 'tenant' | 'mapping' | 'mappingVersion' | 'status' | 'source' | 'error' | 'createdAt' | 'finishedAt'
> {
  /** As the load summary has them, and the rows of the tenant a mirror sync deleted. */
  counts: LoadCounts & { deleted: number };
  /** What a running load reported last; null before it reports or once it ended. */
  progress: { step: string; done: number; total: number; rows: number; updatedAt: Date } | null;
}

/** The loads, with tenant, mapping and progress, limited to one tenant when given. */
export function loadQuery(db: Kysely<CatalogTables>, tenant: string | undefined) {
  let query = db
    .selectFrom('ferry.loads as l')
    .innerJoin('ferry.tenants as t', 't.id', 'l.tenant_id')
    .innerJoin('ferry.mappings as m', 'm.id', 'l.mapping_id')
    .leftJoin('ferry.load_progress as p', 'p.load_id', 'l.id')
    .select([
      'l.id',
      't.slug as tenant',
      'm.name as mapping',
      'm.version as mapping_version',
      sql<string>`ferry.load_status(l)`.as('status'),
      'l.source',
      'l.rows_read',
      'l.rows_staged',
      'l.parse_rejects',
      'l.rows_rejected',
      'l.duplicates',
      'l.inserted',
      'l.updated',
      'l.unchanged',
      'l.deleted',
      'p.step as progress_step',
      'p.done as progress_done',
      'p.total as progress_total',
      'p.rows as progress_rows',
      'p.updated_at as progress_at',
      'l.error',
      'l.created_at',
      'l.finished_at',
    ]);
  if (tenant !== undefined) query = query.where('t.slug', '=', tenant);
  return query;
}

type LoadRow = Awaited<ReturnType<ReturnType<typeof loadQuery>['executeTakeFirstOrThrow']>>;

/** Ended loads keep their last progress row; it is shown only while the load runs. */
const RUNNING = new Set(['staging', 'transforming', 'promoting']);

export function toDashboardLoad(r: LoadRow): DashboardLoad {
  return {
    id: Number(r.id),
    tenant: r.tenant,
    mapping: r.mapping,
    mappingVersion: r.mapping_version,
    status: r.status,
    source: r.source,
    counts: { ...countsOfLoadRow(r), deleted: Number(r.deleted) },
    progress:
      r.progress_step !== null && RUNNING.has(r.status)
        ? {
            step: r.progress_step,
            done: Number(r.progress_done),
            total: Number(r.progress_total),
            rows: Number(r.progress_rows),
            updatedAt: r.progress_at!,
          }
        : null,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}
