import { EventEmitter } from 'node:events';

import { type CronItem, type JobHelpers, parseCronItems, run, type Runner, type TaskList } from 'graphile-worker';
import pg from 'pg';

import { PgferryError } from '../errors.js';
import { ENDED_STATUSES } from '../load/ended-statuses.js';
import { letLoadsRunAgain, stopLoadsAtNextBatch } from '../load/interruption.js';
import { resume } from '../load/resume.js';
import type { PlanStepPayload } from '../plans/plan-run.js';
import { planStepTask } from '../plans/plan-step-task.js';
import { type Project, readProject } from '../project/project-file.js';
import { runSync } from '../syncs/run-sync.js';
import { earlierLoadsInQueue } from './earlier-loads.js';
import { syncQueueName } from './enqueue-sync.js';
import { ensureQueueSchema, MAX_ATTEMPTS, quietLogger, TASKS } from './queue.js';
import { DeadWorkerSweep, WorkerLiveness } from './worker-liveness.js';
import { workerLogger } from './worker-logger.js';

export interface WorkerOptions {
  /** Jobs run side by side (loads of one tenant and table are one queue: one at a time). (Default: 4) */
  concurrency?: number;
  /** pgferry.yaml: its syncs' schedules become the crontab; each sync's run reads it anew. */
  projectFile?: string;
  /** How often to look for jobs scheduled later (retries), in ms. (Default: 2000) */
  pollInterval?: number;
  /**
   * How often to look for jobs of dead workers, and how long a worker holding jobs must be
   * seen without its liveness lock to be taken for dead, in ms. (Default: 5000, 5000)
   */
  sweepIntervalMs?: number;
  deadAfterMs?: number;
  /** Cron: missed runs within this many ms (while no worker ran) are caught up at start, once. (Default: 0) */
  cronBackfillMs?: number;
  /** More tasks, beside pgferry's own (load, sync, plan step). */
  tasks?: TaskList;
  /** A line per thing done (default: stdout). */
  log?: (line: string) => void;
  /** Failures with their stack traces (`pgferry --debug worker`); otherwise one line each. */
  debug?: boolean;
}

export interface RunningWorker {
  /** The syncs whose schedules this worker fires. */
  scheduled: { name: string; schedule: string }[];
  /** Stops: running loads stop at their next batch (resumable; their jobs are retried), then it exits. */
  stop(): Promise<void>;
  /** Settles when the worker has stopped. */
  done: Promise<void>;
}

/**
 * `pgferry worker`: graphile-worker running pgferry's jobs — queued loads (`load --queue`),
 * syncs (`sync --queue` and the crontab built from pgferry.yaml's schedules), plans' steps.
 * A job's load resumes from the step its catalog row says: after a retry, a stop, or a dead
 * worker's job taken over.
 */
export async function startWorker(pool: pg.Pool, options: WorkerOptions = {}): Promise<RunningWorker> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const concurrency = options.concurrency ?? 4;
  await ensureQueueSchema(pool);
  // Each job may take a few connections (staging, the claim is outside): a pool of its own.
  const jobsPool = new pg.Pool({ ...pool.options, max: concurrency * 3 + 4 });
  jobsPool.on('error', () => {});
  jobsPool.on('connect', (client) => client.on('error', () => {}));
  const liveness = await WorkerLiveness.open(pool);
  const events = new EventEmitter();
  // graphile-worker locks jobs with its pool's id (locked_by): that id is what lives or dies.
  events.on('pool:create', ({ workerPool }: { workerPool: { id: string } }) => {
    liveness.hold(workerPool.id).catch(() => {});
    // The id the catalog shows for its jobs (locked_by) and loads (progress): which machine is which.
    log(`worker ${workerPool.id} started, ${concurrency} at a time`);
  });

  const project = options.projectFile ? await readProject(options.projectFile) : undefined;
  const cron = project ? await crontab(pool, project, options.cronBackfillMs ?? 0) : { items: [], scheduled: [] };
  letLoadsRunAgain();
  const runner: Runner = await run({
    pgPool: jobsPool,
    concurrency,
    noHandleSignals: true,
    pollInterval: options.pollInterval ?? 2000,
    logger: options.debug ? workerLogger({ debug: true }) : quietLogger,
    events,
    parsedCronItems: parseCronItems(cron.items),
    taskList: {
      [TASKS.load]: (payload, helpers) => loadTask(jobsPool, payload as { loadId: number }, helpers, log),
      [TASKS.sync]: (payload, helpers) => syncTask(jobsPool, options.projectFile, payload as SyncPayload, helpers, log),
      [TASKS.planStep]: (payload, helpers) => planStepTask(jobsPool, payload as PlanStepPayload, helpers, log),
      ...options.tasks,
    },
  });

  const sweepEvery = options.sweepIntervalMs ?? 5000;
  const deadWorkers = new DeadWorkerSweep(pool, options.deadAfterMs ?? 5000);
  const sweeper = setInterval(() => {
    deadWorkers
      .sweep()
      .then((dead) => {
        for (const id of dead) log(`worker ${id} is gone: its jobs are unlocked for another worker`);
      })
      .catch(() => {});
  }, sweepEvery);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(sweeper);
      stopLoadsAtNextBatch();
      await runner.stop().catch(() => {});
      await runner.promise.catch(() => {});
      await liveness.close();
      await jobsPool.end().catch(() => {});
    })());
  return { scheduled: cron.scheduled, stop, done: runner.promise.then(() => stopping) };
}

interface SyncPayload {
  name: string;
  full?: boolean;
  /** Fired by the crontab: skipped while the sync is paused. */
  cron?: boolean;
}

async function loadTask(
  pool: pg.Pool,
  { loadId }: { loadId: number },
  helpers: JobHelpers,
  log: (line: string) => void,
): Promise<void> {
  // Loads queued before this one whose jobs wait for a retry: theirs first, in queue order.
  for (const earlier of await earlierLoadsInQueue(pool, helpers.job)) {
    await runQueuedLoad(pool, earlier, `before load ${loadId}, queued after it`, helpers, log);
  }
  const waiting = await earlierLoadsInQueue(pool, helpers.job);
  if (waiting.length > 0) throw new Error(`load ${loadId} waits for load ${waiting[0]}, queued before it`);
  await runQueuedLoad(pool, loadId, `attempt ${helpers.job.attempts}`, helpers, log);
}

/** Runs (resumes) one queued load in a job; throws for the job to be tried again. */
async function runQueuedLoad(
  pool: pg.Pool,
  loadId: number,
  why: string,
  helpers: JobHelpers,
  log: (line: string) => void,
): Promise<void> {
  const { rows } = await pool.query<{ claimed: boolean }>('select ferry.load_is_claimed($1) as claimed', [loadId]);
  if (!rows[0]) return log(`load ${loadId}: no such load any more`);
  // A worker taken for dead that was not: try again once it lets go.
  if (rows[0].claimed) throw new Error(`load ${loadId} is running in another process`);
  log(`load ${loadId}: started (${why})`);
  try {
    const outcome = await resume(pool, loadId, { jobs: 2, runner: helpers.job.locked_by ?? undefined });
    if (outcome.outcome === 'finished') return log(`load ${loadId}: ${outcome.status}, nothing to do`);
    const r = outcome.result;
    log(`load ${loadId} ${r.status}${r.error ? `: ${r.error}` : ''}`);
    // A passing failure (or this worker stopping): the job is tried again, the load resumes.
    if (r.resumable) throw new Error(r.error ?? 'interrupted');
  } catch (error) {
    if (!(error instanceof PgferryError)) throw error;
    // Input that will not change by trying again (the file gone, the mapping broken): no retry.
    await pool.query(
      `update ferry.loads set status = 'failed', error = $2, finished_at = now()
       where id = $1 and status <> all ($3::text[]) and not ferry.load_is_claimed(id)`,
      [loadId, error.message, [...ENDED_STATUSES]],
    );
    log(`load ${loadId} failed: ${error.message}`);
  }
}

async function syncTask(
  pool: pg.Pool,
  projectFile: string | undefined,
  payload: SyncPayload,
  helpers: JobHelpers,
  log: (line: string) => void,
): Promise<void> {
  if (!projectFile) return log(`sync ${payload.name}: not run, this worker has no project file (--project)`);
  const { rows } = await pool.query<{ paused_at: Date | null }>('select paused_at from ferry.syncs where name = $1', [
    payload.name,
  ]);
  if (payload.cron && rows[0]?.paused_at) return log(`sync ${payload.name}: paused, not run`);
  try {
    const project = await readProject(projectFile);
    const synced = await runSync(pool, project, payload.name, {
      full: payload.full,
      jobs: 2,
      runner: helpers.job.locked_by ?? undefined,
    });
    const r = synced.result;
    log(
      `sync ${payload.name}: load ${r.loadId} ${r.status}, ${r.counts.read} read${r.sync ? `, cursor ${r.sync.cursor}` : ''}${r.error ? `: ${r.error}` : ''}`,
    );
    if (r.resumable) throw new Error(r.error ?? 'interrupted');
  } catch (error) {
    if (!(error instanceof PgferryError)) throw error;
    await pool.query(
      `update ferry.sync_state set last_outcome = 'error', last_error = $2, last_finished_at = now() where sync_name = $1`,
      [payload.name, error.message],
    );
    log(`sync ${payload.name} failed: ${error.message}`);
  }
}

/** The crontab of a project: one item per scheduled sync, in the queue of its tenant and table. */
async function crontab(
  pool: pg.Pool,
  project: Project,
  backfillMs: number,
): Promise<{ items: CronItem[]; scheduled: { name: string; schedule: string }[] }> {
  const items: CronItem[] = [];
  const scheduled: { name: string; schedule: string }[] = [];
  for (const sync of project.syncs.values()) {
    if (!sync.schedule) continue;
    items.push({
      task: TASKS.sync,
      match: sync.schedule,
      identifier: `${TASKS.sync}:${sync.name}`,
      payload: { name: sync.name, cron: true },
      options: {
        backfillPeriod: backfillMs,
        queueName: await syncQueueName(pool, project, sync),
        jobKey: `${TASKS.sync}:${sync.name}`,
        jobKeyMode: 'preserve_run_at',
        maxAttempts: MAX_ATTEMPTS,
      },
    });
    scheduled.push({ name: sync.name, schedule: sync.schedule });
  }
  return { items, scheduled };
}
