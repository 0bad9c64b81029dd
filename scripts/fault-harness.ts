// The fault harness (issue 23): N runs, each cutting, at a random moment of a load, either the
// load's claim connection or one of its step connections (pg_terminate_backend), and running
// `resume` of that load at once beside the load's own process. In every run the load must end
// exactly once: one process promotes it (one `succeeded` audit line), the catalog says
// succeeded with the counts of an undisturbed load, the tenant's rows are those of the
// undisturbed load, and a rollback (from the undo log) leaves the tenant with no rows.
//
// usage: npm run crash -- [--runs 20] [--rows 200000] [--seed 1] [--database-url URL]
//        (the crash harness runs first, then this one, with the same options).
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { CATALOG_COLUMNS, ensureCatalog } from '../bench/generate-catalog.js';
import { dropDatabase } from '../src/db/database.js';
import {
  addTenant,
  ensureDatabase,
  load,
  migrate,
  protectTable,
  resume,
  rollback,
  startEmbeddedServer,
} from '../src/index.js';
import { loadCounts } from '../src/load/load-counts.js';
import type { LoadResult } from '../src/load/types.js';
import { rowsDifferingFrom } from '../test/helpers/tenant-rows.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const MAPPING = path.join(ROOT, 'bench', 'catalog.sql');

export interface FaultHarnessOptions {
  runs: number;
  rows: number;
  seed: number;
  databaseUrl?: string;
  log?: (line: string) => void;
}

export interface FaultOutcome {
  run: number;
  /** What was cut: the claim's connection, a step's, or nothing (the load had ended). */
  cut: 'claim' | 'step' | 'nothing';
  afterMs: number;
  /** Who promoted the load: its own process, the concurrent resume, or a later resume. */
  promotedBy: 'load' | 'resume' | 'final resume' | 'none';
  exact: boolean;
  problem?: string;
}

function newPool(url: string, name: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: name });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Runs the harness; resolves with each run's outcome. */
export async function faultHarness(options: FaultHarnessOptions): Promise<FaultOutcome[]> {
  const log = options.log ?? (() => {});
  let server: Awaited<ReturnType<typeof startEmbeddedServer>> | undefined;
  let home: string | undefined;
  let adminUrl = options.databaseUrl;
  if (!adminUrl) {
    home = mkdtempSync(path.join(os.tmpdir(), 'pgferry-fault-'));
    chmodSync(home, 0o755);
    server = await startEmbeddedServer({ dir: home });
    adminUrl = server.url;
  }
  const dbName = `pgferry_fault_${process.pid}`;
  const instance = randomBytes(3).toString('hex');
  await ensureDatabase(adminUrl, dbName);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const pool = newPool(dbUrl, 'pgferry-fault-harness');
  try {
    const client = await pool.connect();
    await migrate(client);
    client.release();
    await pool.query(readFileSync(path.join(ROOT, 'bench', 'schema.sql'), 'utf8'));
    await pool.query(`update ferry.settings set instance_id = $1`, [instance]);
    await addTenant(pool, 'reference');
    for (let i = 1; i <= options.runs; i++) await addTenant(pool, `fault${i}`);
    await protectTable(pool, 'bench.products');

    const { file } = await ensureCatalog(path.join(ROOT, 'bench', 'data'), {
      rows: options.rows,
      seed: options.seed,
      dirty: 0.01,
    });
    const started = performance.now();
    const reference = await load(pool, { file, tenant: 'reference', mapping: MAPPING });
    const referenceMs = performance.now() - started;
    if (reference.status !== 'succeeded') throw new Error(`the reference load failed: ${reference.error}`);
    log(`reference load: ${Math.round(referenceMs)} ms, ${JSON.stringify(reference.counts)}`);

    const outcomes: FaultOutcome[] = [];
    for (let run = 1; run <= options.runs; run++) {
      outcomes.push(await faultRun(pool, dbUrl, file, run, referenceMs, reference));
      const o = outcomes.at(-1)!;
      log(
        `run ${run}: cut ${o.cut} after ${o.afterMs} ms, promoted by ${o.promotedBy}: ` +
          (o.exact ? 'exact' : `NOT EXACT: ${o.problem}`),
      );
    }
    return outcomes;
  } finally {
    await pool.end();
    await dropDatabase(adminUrl, dbName, instance).catch(() => {});
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  }
}

async function faultRun(
  pool: pg.Pool,
  dbUrl: string,
  file: string,
  run: number,
  referenceMs: number,
  reference: LoadResult,
): Promise<FaultOutcome> {
  const tenant = `fault${run}`;
  const original = newPool(dbUrl, 'pgferry-fault-load');
  const other = newPool(dbUrl, 'pgferry-fault-resume');
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
    while (loadId === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const afterMs = Math.round(Math.random() * referenceMs);
    await new Promise((resolve) => setTimeout(resolve, afterMs));
    const wantClaim = Math.random() < 0.5;
    const cut = await cutConnection(pool, loadId, wantClaim);
    const resuming = resume(other, loadId).catch((error: Error) => error);
    const [first, second] = await Promise.all([loading, resuming]);
    const promoted: FaultOutcome['promotedBy'][] = [];
    if (!(first instanceof Error) && first.status === 'succeeded') promoted.push('load');
    if (!(second instanceof Error) && second.outcome === 'resumed' && second.result.status === 'succeeded') {
      promoted.push('resume');
    }
    // Neither finished it (the load's process gave up after its retries, the resume came too
    // early): finished now, as an operator would.
    const { rows: now } = await pool.query('select status from ferry.loads where id = $1', [loadId]);
    if (now[0].status !== 'succeeded' && promoted.length === 0) {
      const last = await resume(other, loadId).catch((error: Error) => error);
      if (!(last instanceof Error) && last.outcome === 'resumed' && last.result.status === 'succeeded') {
        promoted.push('final resume');
      }
    }
    const problems: string[] = [];
    const said = (r: LoadResult | Error) =>
      r instanceof Error ? r.message : `${r.status}${r.error ? ` (${r.error})` : ''}`;
    const story = `the load: ${said(first)}; the resume: ${second instanceof Error ? second.message : second.outcome === 'resumed' ? said(second.result) : second.status}`;
    if (promoted.length !== 1) problems.push(`promoted by ${promoted.length} processes (${promoted.join(', ')})`);
    const { rows } = await pool.query('select status from ferry.loads where id = $1', [loadId]);
    if (rows[0].status !== 'succeeded') problems.push(`the catalog says ${rows[0].status}`);
    const { rows: audit } = await pool.query(
      `select count(*)::int as n from ferry.audit where load_id = $1 and command = 'load' and outcome = 'succeeded'`,
      [loadId],
    );
    if (audit[0].n !== 1) problems.push(`${audit[0].n} succeeded audit lines`);
    const counts = await loadCounts(pool, loadId);
    if (JSON.stringify(counts) !== JSON.stringify(reference.counts)) {
      problems.push(`counts ${JSON.stringify(counts)} vs ${JSON.stringify(reference.counts)}`);
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
    return {
      run,
      cut,
      afterMs,
      promotedBy: promoted[0] ?? 'none',
      exact: problems.length === 0,
      problem: problems.length > 0 ? `${problems.join('; ')} [${story}]` : undefined,
    };
  } finally {
    await original.end();
    await other.end();
  }
}

/** Terminates the load's claim connection, or one of its step connections, if it still has one. */
async function cutConnection(pool: pg.Pool, loadId: number, claim: boolean): Promise<FaultOutcome['cut']> {
  const { rows } = await pool.query<{ pid: number; is_claim: boolean }>(
    `select a.pid, exists (
              select from pg_locks l, ferry.load_claim_key($1) as k(key)
              where l.pid = a.pid and l.locktype = 'advisory' and l.granted and l.objsubid = 1
                and l.classid = ((k.key >> 32) & 4294967295)::oid and l.objid = (k.key & 4294967295)::oid
            ) as is_claim
     from pg_stat_activity a
     where a.datname = current_database() and a.application_name = 'pgferry-fault-load'
       and a.backend_type = 'client backend'`,
    [loadId],
  );
  const claims = rows.filter((r) => r.is_claim);
  const steps = rows.filter((r) => !r.is_claim);
  const victims = claim ? claims : steps;
  if (victims.length === 0) return 'nothing';
  const victim = victims[Math.floor(Math.random() * victims.length)];
  await pool.query('select pg_terminate_backend($1)', [victim.pid]);
  return claim ? 'claim' : 'step';
}
