import type pg from 'pg';

import { catalogDb } from './catalog-db.js';

/** A run of a plan with its steps as a dependency graph (`GET /api/plans`). */
export interface DashboardPlanRun {
  id: number;
  name: string;
  status: string;
  dryRun: boolean;
  createdAt: Date;
  finishedAt: Date | null;
  /** In the plan's order; `after` names the steps each waits for (the graph's edges). */
  steps: { name: string; kind: string; status: string; after: string[]; loadId: number | null; error: string | null }[];
}

/**
 * The latest plan runs, newest first, with their steps. Plans span tenants: a dashboard
 * limited to one tenant does not show them (the server refuses the page).
 *
 * @example
 *   const [latest] = await dashboardPlans(pool, { limit: 1 });
 */
export async function dashboardPlans(pool: pg.Pool, options: { limit?: number } = {}): Promise<DashboardPlanRun[]> {
  const db = catalogDb(pool);
  const runs = await db
    .selectFrom('ferry.plan_runs')
    .select(['id', 'name', 'status', 'dry_run', 'created_at', 'finished_at'])
    .orderBy('id', 'desc')
    .limit(Math.min(options.limit ?? 20, 200))
    .execute();
  if (runs.length === 0) return [];
  const steps = await db
    .selectFrom('ferry.plan_steps')
    .select(['run_id', 'name', 'kind', 'status', 'after', 'load_id', 'error'])
    .where(
      'run_id',
      'in',
      runs.map((r) => r.id),
    )
    .orderBy('run_id')
    .orderBy('position')
    .execute();
  return runs.map((run) => ({
    id: Number(run.id),
    name: run.name,
    status: run.status,
    dryRun: run.dry_run,
    createdAt: run.created_at,
    finishedAt: run.finished_at,
    steps: steps
      .filter((s) => s.run_id === run.id)
      .map((s) => ({
        name: s.name,
        kind: s.kind,
        status: s.status,
        after: s.after,
        loadId: s.load_id === null ? null : Number(s.load_id),
        error: s.error,
      })),
  }));
}
