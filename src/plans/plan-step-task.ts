import type { JobHelpers } from 'graphile-worker';
import type pg from 'pg';

import { withTransaction } from '../db/database.js';
import { formatLocation, PgferryError } from '../errors.js';
import { ENDED_STATUSES } from '../load/ended-statuses.js';
import { load } from '../load/load.js';
import { loadCounts } from '../load/load-counts.js';
import { resume } from '../load/resume.js';
import type { LoadResult } from '../load/types.js';
import { readProject } from '../project/project-file.js';
import { runSync } from '../syncs/run-sync.js';
import { backupTenantToFolder } from '../tenant-backup/backup-to-folder.js';
import type { BackupStepSpec, LoadStepSpec, SyncStepSpec } from './plan-file.js';
import { enqueuePlanStep, type PlanStepPayload } from './plan-run.js';

interface StepRow {
  kind: 'load' | 'sync' | 'backup';
  spec: LoadStepSpec | SyncStepSpec | BackupStepSpec;
  status: string;
  load_id: string | null;
  dry_run: boolean;
}

/** How a step ended, as ferry.finish_plan_step records it. */
interface StepOutcome {
  status: 'succeeded' | 'failed';
  loadId?: number;
  counts?: LoadResult['counts'];
  error?: string;
}

/**
 * The worker's task `pgferry_plan_step`: runs one step of a plan's run (a load, or a sync's
 * run; dry when the run is), records how it ended, and queues the steps now ready, in one
 * transaction. Input and data failures end the step failed (its dependents are skipped);
 * passing ones (a lost connection, the worker stopping) are thrown, and graphile-worker
 * tries the job again until its last attempt, which records the step failed.
 */
export async function planStepTask(
  pool: pg.Pool,
  { runId, step }: PlanStepPayload,
  helpers: JobHelpers,
  log: (line: string) => void,
): Promise<void> {
  const label = `plan run ${runId} step ${step}`;
  const { rows } = await pool.query<StepRow>(
    `update ferry.plan_steps s set status = 'running', started_at = coalesce(s.started_at, now())
     from ferry.plan_runs r
     where s.run_id = $1 and s.name = $2 and s.status in ('queued', 'running') and r.id = s.run_id
     returning s.kind, s.spec, s.status, s.load_id, r.dry_run`,
    [runId, step],
  );
  // Ended already (the job tried again after its outcome was recorded), or gone.
  if (!rows[0]) return log(`${label}: nothing to do`);
  const row = rows[0];
  log(`${label}: started (attempt ${helpers.job.attempts})`);
  const lastAttempt = helpers.job.attempts >= helpers.job.max_attempts;
  let outcome: StepOutcome;
  try {
    if (row.kind === 'backup') {
      outcome = await runBackupStep(pool, row.spec as BackupStepSpec, row.dry_run, (line) => log(`${label}: ${line}`));
    } else {
      const result =
        row.kind === 'load'
          ? await runLoadStep(pool, runId, step, row, helpers)
          : await runSyncStep(pool, row.spec as SyncStepSpec, row.dry_run, helpers);
      outcome = outcomeOf(result);
      // A passing failure (or this worker stopping): the job is tried again, the load resumes.
      if (result.resumable && !lastAttempt) {
        log(`${label}: ${result.error ?? 'interrupted'}; tried again`);
        throw new Error(result.error ?? 'interrupted');
      }
    }
  } catch (error) {
    if (!(error instanceof PgferryError) && !lastAttempt) throw error;
    outcome = { status: 'failed', error: messageOf(error) };
  }
  const ready = await withTransaction(pool, async (client) => {
    const { rows: next } = await client.query<{ name: string }>(
      'select ferry.finish_plan_step($1, $2, $3, $4, $5, $6) as name',
      [
        runId,
        step,
        outcome.status,
        outcome.loadId ?? null,
        outcome.counts ? JSON.stringify(outcome.counts) : null,
        outcome.error ?? null,
      ],
    );
    for (const { name } of next) await enqueuePlanStep(client, runId, name);
    return next.map((r) => r.name);
  });
  const counts = outcome.counts ? `, ${outcome.counts.read} read` : '';
  log(`${label}: ${outcome.status}${outcome.loadId ? ` (load ${outcome.loadId}${counts})` : ''}`);
  if (outcome.error) log(`${label}: ${outcome.error}`);
  if (ready.length > 0) log(`plan run ${runId}: queued ${ready.join(', ')}`);
}

/**
 * A load's result as the step's outcome: succeeded (or a dry run's would-be; or skipped, the
 * file loaded already, with the load that did it), else failed.
 */
function outcomeOf(result: LoadResult): StepOutcome {
  if (result.status === 'skipped') {
    const by = result.previousLoadRunning ? 'is loading' : 'loaded';
    return {
      status: 'succeeded',
      loadId: result.previousLoadId,
      error: `skipped: load ${result.previousLoadId} ${by} this file already (force: true in the step loads it again)`,
    };
  }
  const ok = result.status === 'succeeded' || result.status === 'dry_run';
  return {
    status: ok ? 'succeeded' : 'failed',
    loadId: result.loadId,
    counts: result.loadId === undefined ? undefined : result.counts,
    error: ok ? undefined : (result.error ?? `the load ended ${result.status}`),
  };
}

function messageOf(error: unknown): string {
  if (error instanceof PgferryError) return `${formatLocation(error.location)}${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * A load step: a new load of the step's file, skipped as `pgferry load` skips it when the file
 * was loaded already for the tenant and mapping (unless the step says `force: true`); on a
 * retry, the load an earlier attempt registered is resumed, or taken as it ended.
 */
async function runLoadStep(
  pool: pg.Pool,
  runId: number,
  step: string,
  row: StepRow,
  helpers: JobHelpers,
): Promise<LoadResult> {
  const spec = row.spec as LoadStepSpec;
  const runner = helpers.job.locked_by ?? undefined;
  if (row.load_id !== null) {
    const loadId = Number(row.load_id);
    const { rows } = await pool.query<{ status: string; claimed: boolean }>(
      'select status, ferry.load_is_claimed(id) as claimed from ferry.loads where id = $1',
      [loadId],
    );
    let now = rows[0]?.status;
    // Registered and not ended: a retry resumes it.
    if (now !== undefined && !ENDED_STATUSES.has(now)) {
      // A worker taken for dead that was not: try again once it lets go.
      if (rows[0].claimed) throw new Error(`load ${loadId} is running in another process`);
      const resumed = await resume(pool, loadId, { jobs: 2, runner });
      if (resumed.outcome === 'resumed') return resumed.result;
      now = resumed.status;
    }
    if (now === 'succeeded' || now === 'dry_run') {
      return {
        status: now,
        loadId,
        mapping: { name: spec.mapping },
        file: spec.file,
        counts: await loadCounts(pool, loadId),
        reasons: [],
        timings: {},
      };
    }
    // Failed or gone: loaded anew.
  }
  return load(pool, {
    file: spec.file,
    tenant: spec.tenant,
    mapping: spec.mapping,
    mappingsDir: spec.mappingsDir,
    format: spec.format,
    delimiter: spec.delimiter,
    sheet: spec.sheet,
    records: spec.records,
    table: spec.table,
    maxRejects: spec.maxRejects,
    maxDuplicates: spec.maxDuplicates,
    dryRun: row.dry_run,
    force: spec.force ?? false,
    jobs: 2,
    runner,
    onEvent: (event) => {
      if (event.type !== 'registered') return;
      // Known at once: a retry after a crash resumes this load rather than starting another.
      pool
        .query('update ferry.plan_steps set load_id = $3 where run_id = $1 and name = $2', [runId, step, event.loadId])
        .catch(() => {});
    },
  });
}

/** A sync step: one run of the sync (a run interrupted before is pulled again by runSync). */
async function runSyncStep(
  pool: pg.Pool,
  spec: SyncStepSpec,
  dryRun: boolean,
  helpers: JobHelpers,
): Promise<LoadResult> {
  const project = await readProject(spec.project);
  const synced = await runSync(pool, project, spec.sync, {
    dryRun,
    jobs: 2,
    runner: helpers.job.locked_by ?? undefined,
  });
  return synced.result;
}

/**
 * A backup step: the tenant's backup into the step's folder (a new one on every attempt; the
 * last `keep` kept). A dry run writes none: it changes nothing, and says what it would do.
 */
async function runBackupStep(
  pool: pg.Pool,
  spec: BackupStepSpec,
  dryRun: boolean,
  log: (line: string) => void,
): Promise<StepOutcome> {
  if (dryRun) {
    log(`dry run: would back ${spec.tenant} up into ${spec.dir}`);
    return { status: 'succeeded' };
  }
  const backup = await backupTenantToFolder(pool, { tenant: spec.tenant, dir: spec.dir, keep: spec.keep });
  log(`backup of ${spec.tenant}: ${backup.file} (${backup.rows} rows)`);
  return { status: 'succeeded' };
}
