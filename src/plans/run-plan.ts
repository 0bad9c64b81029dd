import type pg from 'pg';

import { type Plan, readPlan } from './plan-file.js';
import { followPlan, type PlanRunState, type PlanStepState, startPlan, workerIsRunning } from './plan-run.js';

/** What runPlan() reports while it runs. */
export type PlanEvent =
  /** The run is recorded and its first steps queued; `workerRunning` false: none runs them yet. */
  | { type: 'started'; runId: number; queued: string[]; workerRunning: boolean }
  /** A step's status changed (each step is reported once at the start too). */
  | { type: 'step'; step: PlanStepState };

export interface RunPlanOptions {
  /** Run every step as a dry run: validated and counted, nothing promoted, no cursor moved. */
  dryRun?: boolean;
  /** Queue the run and return at once, without following it (`final` is then null). */
  detach?: boolean;
  onEvent?: (event: PlanEvent) => void;
  /** How often the run is read while it is followed. (Default: 500 ms) */
  intervalMs?: number;
}

export interface RunPlanResult {
  runId: number;
  /** The steps queued at the start: those that wait for nothing. */
  queued: string[];
  /** Whether a pgferry worker ran on the database when the run was queued. */
  workerRunning: boolean;
  /** The run once it ended; null with `detach`. */
  final: PlanRunState | null;
}

/**
 * `pgferry plan run`: records a run of a plan (a plan file, checked whole first, or a Plan
 * from readPlan), queues the steps that wait for nothing for the worker (`pgferry worker`),
 * and follows the run until it ends — unless `detach`. Nothing runs the steps but a worker:
 * without one, the run waits for it (`workerRunning` says so).
 *
 * @example
 *   const { final } = await runPlan(pool, 'catalog.plan.yaml', {
 *     onEvent: (e) => e.type === 'step' && console.log(e.step.name, e.step.status),
 *   });
 *   if (final?.status === 'failed') process.exitCode = 1;
 */
export async function runPlan(
  pool: pg.Pool,
  plan: Plan | string,
  options: RunPlanOptions = {},
): Promise<RunPlanResult> {
  const checked = typeof plan === 'string' ? await readPlan(plan) : plan;
  const emit = options.onEvent ?? (() => {});
  const { runId, queued } = await startPlan(pool, checked, { dryRun: options.dryRun });
  const workerRunning = await workerIsRunning(pool);
  emit({ type: 'started', runId, queued, workerRunning });
  if (options.detach) return { runId, queued, workerRunning, final: null };
  const final = await followPlan(pool, runId, (step) => emit({ type: 'step', step }), {
    intervalMs: options.intervalMs,
  });
  return { runId, queued, workerRunning, final };
}
