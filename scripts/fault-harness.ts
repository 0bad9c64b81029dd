// The fault harness (issue 23): N runs, each injecting one fault at a random moment of a
// load, the kinds taken in turn:
// - claim, step: the load's claim connection, or one of its step connections, terminated
//   (pg_terminate_backend), and `resume` of the load run at once beside the load's process;
// - restart fast, restart immediate: the server stopped (a clean fast shutdown, or SIGQUIT as
//   in a crash) and, after an outage of up to 3 s, started again, with a concurrent `resume`
//   as soon as it is back (only on a server of the harness's own: without --database-url);
// - worker killed: the load queued, two `pgferry worker` processes, and the one running the
//   load killed (SIGKILL): the other must take the load over.
// In every run the load must end exactly once: one process promotes it (one `succeeded`
// audit line), the catalog says succeeded with the counts of an undisturbed load, the
// tenant's rows are those of the undisturbed load, and a rollback (from the undo log) leaves
// the tenant with no rows. A run that does not end in time is reported with what the server
// was doing, not left to hang.
//
// usage: npm run crash -- [--runs 20] [--rows 200000] [--seed 1] [--database-url URL]
//        (the crash harness runs first, then this one, with the same options).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type pg from 'pg';

import { CATALOG_COLUMNS, ensureCatalog } from '../bench/generate-catalog.js';
import { load, resume, rollback } from '../src/index.js';
import { ENDED_STATUSES } from '../src/load/ended-statuses.js';
import { loadCounts } from '../src/load/load-counts.js';
import type { LoadResult } from '../src/load/types.js';
import { prng, type Rand } from '../test/helpers/prng.js';
import { rowsDifferingFrom } from '../test/helpers/tenant-rows.js';
import { isRunning, startWorkerChild, type WorkerChild } from '../test/helpers/worker-child.js';
import { claimantPid, cutConnection, diagnostics } from './fault-injection.js';
import { type HarnessDatabase, harnessPool, openHarnessDatabase } from './harness-database.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const MAPPING = path.join(ROOT, 'bench', 'catalog.sql');
const LOAD_APP = 'pgferry-fault-load';

export type FaultKind = 'claim' | 'step' | 'restart fast' | 'restart immediate' | 'worker killed';

export interface FaultHarnessOptions {
  runs: number;
  rows: number;
  seed: number;
  /** A server of the user's: no restarts then. Without it, an embedded server of the harness's own. */
  databaseUrl?: string;
  log?: (line: string) => void;
}

export interface FaultOutcome {
  run: number;
  kind: FaultKind;
  /** Whether the fault hit the load (false: the load had ended, or had nothing to cut then). */
  hit: boolean;
  /** How many loads it took to hit one (see ATTEMPTS). */
  attempts: number;
  afterMs: number;
  /** Who promoted the load. */
  promotedBy: 'load' | 'resume' | 'final resume' | 'a worker' | 'none';
  exact: boolean;
  problem?: string;
}

interface Context {
  db: HarnessDatabase;
  file: string;
  referenceMs: number;
  reference: LoadResult;
  /** The moments and outages, from the seed: a run can be repeated. */
  rand: Rand;
}

/** A run whose fault found nothing to hit (the load had ended) is tried again this often, sooner each time. */
const ATTEMPTS = 3;

/** Runs the harness; resolves with each run's outcome. */
export async function faultHarness(options: FaultHarnessOptions): Promise<FaultOutcome[]> {
  const log = options.log ?? (() => {});
  const tenants = Array.from({ length: options.runs }, (_, i) => `fault${i + 1}`);
  const db = await openHarnessDatabase({ harness: 'fault', tenants, databaseUrl: options.databaseUrl });
  try {
    const kinds: FaultKind[] = ['claim', 'step', 'worker killed'];
    if (db.restart) kinds.splice(2, 0, 'restart fast', 'restart immediate');
    else log("restarts skipped: the server is not the harness's own (--database-url)");
    const { file } = await ensureCatalog(path.join(ROOT, 'bench', 'data'), {
      rows: options.rows,
      seed: options.seed,
      dirty: 0.01,
    });
    const started = performance.now();
    const reference = await load(db.pool, { file, tenant: 'reference', mapping: MAPPING });
    const referenceMs = performance.now() - started;
    if (reference.status !== 'succeeded') throw new Error(`the reference load failed: ${reference.error}`);
    log(`reference load: ${Math.round(referenceMs)} ms, ${JSON.stringify(reference.counts)}`);

    const context: Context = { db, file, referenceMs, reference, rand: prng(options.seed) };
    const outcomes: FaultOutcome[] = [];
    for (let run = 1; run <= options.runs; run++) {
      const kind = kinds[(run - 1) % kinds.length];
      const o = await faultRun(context, run, kind);
      outcomes.push(o);
      log(
        `run ${run}: ${kind} ${o.hit ? '' : `(missed ${o.attempts} times: nothing to hit) `}after ${o.afterMs} ms, ` +
          `promoted by ${o.promotedBy}: ${o.exact ? 'exact' : `NOT EXACT: ${o.problem}`}`,
      );
    }
    return outcomes;
  } finally {
    await db.close();
  }
}

/** How long a run may take before it is reported as stuck. */
const stuckAfterMs = (context: Context) => 90_000 + 10 * context.referenceMs;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Settles with the promise's value, or with `stuck` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'stuck'> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), ms)));
  try {
    return await Promise.race([promise, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One run: the fault at a moment from the seed; a fault that found nothing to hit (the load
 * had ended, or was between connections) is tried again on a new load, earlier each time.
 */
async function faultRun(context: Context, run: number, kind: FaultKind): Promise<FaultOutcome> {
  let outcome: FaultOutcome | undefined;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const afterMs = Math.round((context.rand() * context.referenceMs) / attempt);
    outcome = { ...(await faultAttempt(context, run, kind, afterMs)), attempts: attempt };
    if (outcome.hit || !outcome.exact) return outcome;
  }
  return outcome!;
}

async function faultAttempt(
  context: Context,
  run: number,
  kind: FaultKind,
  afterMs: number,
): Promise<Omit<FaultOutcome, 'attempts'>> {
  const tenant = `fault${run}`;
  const deadline = Date.now() + stuckAfterMs(context);
  const happened =
    kind === 'worker killed'
      ? workerRun(context, tenant, afterMs, deadline)
      : directRun(context, tenant, kind, afterMs);
  const result = await within(happened, stuckAfterMs(context));
  if (result === 'stuck') {
    const { rows } = await context.db.pool.query(
      `select max(l.id) as id from ferry.loads l join ferry.tenants t on t.id = l.tenant_id where t.slug = $1`,
      [tenant],
    );
    const problem = `stuck after ${stuckAfterMs(context)} ms: ${await diagnostics(context.db.pool, rows[0].id)}`;
    return { run, kind, hit: true, afterMs, promotedBy: 'none', exact: false, problem };
  }
  const problems = [...result.problems, ...(await exactlyOnce(context, result.loadId, tenant))];
  return {
    run,
    kind,
    hit: result.hit,
    afterMs,
    promotedBy: result.promotedBy[0] ?? 'none',
    exact: problems.length === 0 && result.promotedBy.length === 1,
    problem:
      problems.length > 0 || result.promotedBy.length !== 1
        ? `promoted by ${result.promotedBy.length} (${result.promotedBy.join(', ')}); ${problems.join('; ')} [${result.story}]`
        : undefined,
  };
}

interface Happened {
  loadId: number;
  hit: boolean;
  promotedBy: FaultOutcome['promotedBy'][];
  problems: string[];
  /** What each process said, for a run that was not exact. */
  story: string;
}

/** A load in this process, a fault at `afterMs`, and a resume started at once beside it. */
async function directRun(context: Context, tenant: string, kind: FaultKind, afterMs: number): Promise<Happened> {
  const { db, file } = context;
  const original = harnessPool(db.url, LOAD_APP);
  const other = harnessPool(db.url, 'pgferry-fault-resume');
  try {
    let loadId = 0;
    const loading = load(original, {
      file,
      tenant,
      mapping: MAPPING,
      onEvent: (event) => {
        if (event.type === 'registered') loadId = event.loadId;
      },
    }).catch((error: Error) => error);
    while (loadId === 0) {
      const early = await within(loading, 10);
      if (early !== 'stuck') throw new Error(`the load ended before registering: ${said(early)}`);
    }
    await sleep(afterMs);
    let hit: boolean;
    if (kind === 'claim' || kind === 'step') {
      hit = await cutConnection(db.pool, loadId, LOAD_APP, kind);
    } else {
      const ended = await within(loading, 0);
      hit = ended === 'stuck';
      await db.restart!(kind === 'restart fast' ? 'fast' : 'immediate', Math.round(context.rand() * 3000));
    }
    const resuming = resume(other, loadId).catch((error: Error) => error);
    const [first, second] = await Promise.all([loading, resuming]);
    const promotedBy: FaultOutcome['promotedBy'][] = [];
    if (!(first instanceof Error) && first.status === 'succeeded') promotedBy.push('load');
    if (!(second instanceof Error) && second.outcome === 'resumed' && second.result.status === 'succeeded') {
      promotedBy.push('resume');
    }
    // Neither finished it (the load's process gave up after its retries, the resume came too
    // early): finished now, as an operator would.
    if (promotedBy.length === 0 && (await statusOf(db.pool, loadId)) !== 'succeeded') {
      const last = await resume(other, loadId).catch((error: Error) => error);
      if (!(last instanceof Error) && last.outcome === 'resumed' && last.result.status === 'succeeded') {
        promotedBy.push('final resume');
      }
    }
    const story = `the load: ${said(first)}; the resume: ${
      second instanceof Error ? second.message : second.outcome === 'resumed' ? said(second.result) : second.status
    }`;
    return { loadId, hit, promotedBy, problems: [], story };
  } finally {
    await original.end();
    await other.end();
  }
}

/** The load queued, two workers, and the one that runs the load killed at `afterMs`. */
async function workerRun(context: Context, tenant: string, afterMs: number, deadline: number): Promise<Happened> {
  const { db, file } = context;
  // A dead worker's jobs are handed on within a second or two, not the default 10 s.
  const options = { url: db.url, concurrency: 1, sweepIntervalMs: 500, deadAfterMs: 1000 };
  const workers: WorkerChild[] = await Promise.all([startWorkerChild(options), startWorkerChild(options)]);
  try {
    const queued = await load(db.pool, { file, tenant, mapping: MAPPING, queue: true });
    const loadId = queued.loadId!;
    let pid: number | undefined;
    // Until a worker claims it, or the run is reported stuck (then this stops too).
    while (!(pid = await claimantPid(db.pool, loadId)) && Date.now() < deadline) await sleep(20);
    await sleep(afterMs);
    const victim = workers.find((w) => w.child.pid === pid);
    const hit = !ENDED_STATUSES.has(await statusOf(db.pool, loadId)) && victim !== undefined;
    if (hit) victim!.child.kill('SIGKILL');
    const problems: string[] = [];
    while (!ENDED_STATUSES.has(await statusOf(db.pool, loadId)) && Date.now() < deadline) {
      if (!workers.some((w) => isRunning(w.child))) {
        problems.push('every worker exited');
        break;
      }
      await sleep(100);
    }
    const status = await statusOf(db.pool, loadId);
    const story = workers.map((w) => `worker ${w.child.pid}: ${w.output().trim().split('\n').slice(-4).join(' | ')}`);
    return {
      loadId,
      hit,
      promotedBy: status === 'succeeded' ? ['a worker'] : [],
      problems,
      story: story.join('; '),
    };
  } finally {
    for (const w of workers) if (isRunning(w.child)) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => within(w.exited, 10_000)));
    for (const w of workers) if (isRunning(w.child)) w.child.kill('SIGKILL');
  }
}

const said = (r: LoadResult | Error) =>
  r instanceof Error ? r.message : `${r.status}${r.error ? ` (${r.error})` : ''}`;

async function statusOf(pool: pg.Pool, loadId: number): Promise<string> {
  const { rows } = await pool.query<{ status: string }>('select status from ferry.loads where id = $1', [loadId]);
  return rows[0].status;
}

/**
 * What must hold however the run went: the catalog says succeeded, once (one audit line),
 * with the reference's counts; the tenant has the reference's rows; the undo log undoes it.
 */
async function exactlyOnce(context: Context, loadId: number, tenant: string): Promise<string[]> {
  const { pool } = context.db;
  const problems: string[] = [];
  const status = await statusOf(pool, loadId);
  if (status !== 'succeeded') problems.push(`the catalog says ${status}`);
  const { rows: audit } = await pool.query(
    `select count(*)::int as n from ferry.audit where load_id = $1 and command = 'load' and outcome = 'succeeded'`,
    [loadId],
  );
  if (audit[0].n !== 1) problems.push(`${audit[0].n} succeeded audit lines`);
  const counts = await loadCounts(pool, loadId);
  if (JSON.stringify(counts) !== JSON.stringify(context.reference.counts)) {
    problems.push(`counts ${JSON.stringify(counts)} vs ${JSON.stringify(context.reference.counts)}`);
  }
  const differing = await rowsDifferingFrom(pool, 'bench.products', CATALOG_COLUMNS, tenant, 'reference');
  if (differing !== 0) problems.push(`${differing} rows differ from the reference`);
  const undone = await rollback(pool, loadId).catch((error: Error) => ({ outcome: error.message }));
  const { rows: left } = await pool.query('select count(*)::int as n from bench.products where tenant_id = $1', [
    tenant,
  ]);
  if (undone.outcome !== 'rolled_back' || left[0].n !== 0) {
    problems.push(`rollback ${undone.outcome}, ${left[0].n} rows left`);
  }
  return problems;
}
