import os from 'node:os';

import type pg from 'pg';

import { withTransaction } from '../db/database.js';
import { PgferryError } from '../errors.js';
import { addJob, ensureQueueSchema, TASKS } from '../jobs/queue.js';
import type { LoadCounts } from '../load/types.js';
import type { Plan } from './plan-file.js';

export type PlanStepStatus = 'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'skipped';

/** One step of a run as `pgferry plan status` shows it. */
export interface PlanStepState {
  name: string;
  kind: 'load' | 'sync' | 'backup';
  status: PlanStepStatus;
  after: string[];
  loadId: number | null;
  /** From ferry.loads while the load is there; else as the step recorded them (a dry run's). */
  counts: LoadCounts | null;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface PlanRunState {
  id: number;
  name: string;
  plan: string;
  dryRun: boolean;
  status: 'running' | 'succeeded' | 'failed';
  osUser: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  steps: PlanStepState[];
}

/** The job of one step of a run. */
export interface PlanStepPayload {
  runId: number;
  step: string;
}

/** Queues the job of a step of a run, on a connection (in the caller's transaction). */
export async function enqueuePlanStep(client: pg.Pool | pg.ClientBase, runId: number, step: string): Promise<void> {
  const payload: PlanStepPayload = { runId, step };
  // No queue name: independent branches of the plan run side by side.
  await addJob(client, TASKS.planStep, payload, null, `${TASKS.planStep}:${runId}:${step}`);
}

/**
 * `pgferry plan run`: records a run of a plan (checked whole by readPlan) and its steps, and
 * queues the steps that wait for nothing, in one transaction. A worker runs them, and queues
 * each step once its prerequisites have succeeded.
 */
export async function startPlan(
  pool: pg.Pool,
  plan: Plan,
  options: { dryRun?: boolean } = {},
): Promise<{ runId: number; queued: string[] }> {
  const tenants = [...new Set(plan.steps.flatMap((s) => (s.kind === 'sync' ? [] : [s.spec.tenant])))];
  const { rows: found } = await pool.query<{ slug: string }>('select slug from ferry.tenants where slug = any ($1)', [
    tenants,
  ]);
  const slugs = new Set(found.map((r) => r.slug));
  for (const step of plan.steps) {
    if (step.kind !== 'sync' && !slugs.has(step.spec.tenant)) {
      throw new PgferryError(`step ${step.name}: no tenant ${step.spec.tenant}`, {
        location: { file: plan.path, line: step.line },
        hint: `pgferry tenant add ${step.spec.tenant}`,
      });
    }
  }
  await ensureQueueSchema(pool);
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      'insert into ferry.plan_runs (plan_path, name, dry_run, os_user) values ($1, $2, $3, $4) returning id',
      [plan.path, plan.name, options.dryRun ?? false, os.userInfo().username],
    );
    const runId = Number(rows[0].id);
    const queued: string[] = [];
    for (const [position, step] of plan.steps.entries()) {
      const ready = step.after.length === 0;
      await client.query(
        `insert into ferry.plan_steps (run_id, name, position, kind, spec, after, status)
         values ($1, $2, $3, $4, $5, $6, $7)`,
        [runId, step.name, position, step.kind, JSON.stringify(step.spec), step.after, ready ? 'queued' : 'pending'],
      );
      if (ready) queued.push(step.name);
    }
    for (const step of queued) await enqueuePlanStep(client, runId, step);
    return { runId, queued };
  });
}

export { workerIsRunning } from '../jobs/worker-running.js';

/**
 * `pgferry plan status`: a run of a plan and its steps — each one's status, load, counts,
 * error and prerequisites (the latest run when no id is given); a PgferryError when there is
 * none.
 *
 * @example
 *   const run = await planStatus(pool); // the latest run
 *   for (const step of run.steps) console.log(step.name, step.status, step.counts?.inserted);
 */
export async function planStatus(pool: pg.Pool | pg.ClientBase, runId?: number): Promise<PlanRunState> {
  const { rows: runs } = await pool.query(
    `select id, name, plan_path, dry_run, status, os_user, created_at, finished_at
     from ferry.plan_runs where $1::bigint is null or id = $1 order by id desc limit 1`,
    [runId ?? null],
  );
  const run = runs[0];
  if (!run) {
    throw new PgferryError(runId === undefined ? 'no plan has run yet' : `no plan run ${runId}`, {
      hint: runId === undefined ? 'pgferry plan run PLAN.yaml' : 'pgferry plan status shows the latest run',
    });
  }
  const { rows } = await pool.query(
    `select s.name, s.kind, s.status, s.after, s.load_id, s.error, s.started_at, s.finished_at,
            case when l.id is null then s.counts
                 else jsonb_build_object('read', l.rows_read, 'staged', l.rows_staged, 'unparseable', l.parse_rejects,
                                         'rejected', l.rows_rejected, 'duplicates', l.duplicates,
                                         'inserted', l.inserted, 'updated', l.updated, 'unchanged', l.unchanged)
            end as counts
     from ferry.plan_steps s
     left join ferry.loads l on l.id = s.load_id
     where s.run_id = $1
     order by s.position`,
    [run.id],
  );
  return {
    id: Number(run.id),
    name: run.name,
    plan: run.plan_path,
    dryRun: run.dry_run,
    status: run.status,
    osUser: run.os_user,
    createdAt: run.created_at,
    finishedAt: run.finished_at,
    steps: rows.map((r) => ({
      name: r.name,
      kind: r.kind,
      status: r.status,
      after: r.after,
      loadId: r.load_id === null ? null : Number(r.load_id),
      counts: r.counts === null ? null : countsOf(r.counts),
      error: r.error,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
    })),
  };
}

function countsOf(json: Record<string, unknown>): LoadCounts {
  const n = (key: string) => Number(json[key] ?? 0);
  return {
    read: n('read'),
    staged: n('staged'),
    unparseable: n('unparseable'),
    rejected: n('rejected'),
    duplicates: n('duplicates'),
    inserted: n('inserted'),
    updated: n('updated'),
    unchanged: n('unchanged'),
  };
}

/**
 * Watches a run until it ends (polling every `intervalMs`), calling `onChange` for each step
 * whose status changed (and once for each step at the start). Returns the final state.
 */
export async function followPlan(
  pool: pg.Pool,
  runId: number,
  onChange: (step: PlanStepState, run: PlanRunState) => void,
  options: { intervalMs?: number } = {},
): Promise<PlanRunState> {
  const seen = new Map<string, PlanStepStatus>();
  for (;;) {
    const state = await planStatus(pool, runId);
    for (const step of state.steps) {
      if (seen.get(step.name) === step.status) continue;
      seen.set(step.name, step.status);
      onChange(step, state);
    }
    if (state.status !== 'running') return state;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 500));
  }
}
