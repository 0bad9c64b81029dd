// pgferry's incremental-sync benchmark (issue 6): a source table of N rows in a second
// database on the same server, synced into a protected target (pgferry.yaml: cursor
// updated_at, mode upsert). Measured side by side, interleaved, each in a child process:
//   F  the first full load of the table, into an empty target (a fresh tenant each run)
//   R  the full re-pull (`pgferry sync --full`) into the loaded target
//   I  the increment: 1% of the source's rows updated (random ids, updated_at moved), then
//      `pgferry sync` (runSync without full)
// Each run is checked (counts; the target equals the source: count and checksum). The
// section "Incremental sync (issue 6)" of bench/RESULTS.md is written (replaced) with the figures.
//
// usage: npx tsx bench/sync.ts [--rows 1000000] [--runs 3] [--changed 0.01] [--seed 1]
//                              [--database-url URL] [--out bench/RESULTS.md]
// (the same file runs as the child process: bench/sync.ts --child JSON)
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import pg from 'pg';

import { addTenant, migrate, protectTable } from '../src/index.js';
import { prng } from '../test/helpers/prng.js';
import { createDatabase, openBenchServer, ROOT } from './bench-setup.js';
import { runCommand, tail } from './commands.js';
import { median } from './report.js';
import { writeSections } from './results-file.js';

const SCHEMA = 'bench_sync';
const TARGET = `${SCHEMA}.products`;
const SOURCE_TABLE = 'items';
const STEADY_TENANT = 'bench_sync';
const STEADY_SYNC = 'steady';
const SOURCE_ENV = 'PGFERRY_BENCH_SYNC_SOURCE';
const HEADING = '## Incremental sync (issue 6)';

/** Each fillfactor's results have a section of their own, so both can stand in RESULTS.md. */
function headingOf(options: Pick<Options, 'fillfactor'>): string {
  return options.fillfactor === 100 ? HEADING : `${HEADING}, target at fillfactor ${options.fillfactor}`;
}

const USAGE = `usage: npx tsx bench/sync.ts [options]     (or: npm run bench:sync -- [options])

  --rows <n>             rows of the source table (default: 1000000)
  --runs <n>             runs of each case, interleaved (default: 3)
  --changed <fraction>   rows the increment finds changed (default: 0.01)
  --seed <n>             seed of the source's values and of the changed ids (default: 1)
  --fillfactor <n>       the target table's fillfactor, 10 to 100 (default: 100, PostgreSQL's):
                         below 100, pages keep room for the increment's updates (HOT updates)
  --database-url <url>   server to use, as its superuser (default: $DATABASE_URL, else an
                         embedded PostgreSQL 18 in a temporary folder, removed at the end);
                         the source is the database <name>_sync_source on the same server
  --out <file>           where the section "Incremental sync (issue 6)" goes (default:
                         bench/RESULTS.md; the section is replaced, the rest kept)`;

interface Options {
  rows: number;
  runs: number;
  changed: number;
  seed: number;
  fillfactor: number;
  databaseUrl?: string;
  out: string;
  argv: string[];
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        rows: { type: 'string', default: '1000000' },
        runs: { type: 'string', default: '3' },
        changed: { type: 'string', default: '0.01' },
        seed: { type: 'string', default: '1' },
        fillfactor: { type: 'string', default: '100' },
        'database-url': { type: 'string' },
        out: { type: 'string', default: path.join(ROOT, 'bench', 'RESULTS.md') },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return undefined;
  const whole = (name: string, text: string, min: number) => {
    const n = Number(text.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, not ${text}`);
    return n;
  };
  const fillfactor = (text: string) => {
    const n = whole('fillfactor', text, 10);
    if (n > 100) throw new UsageError(`--fillfactor must be at most 100, not ${text}`);
    return n;
  };
  const changed = Number(values.changed);
  if (!(changed > 0 && changed <= 1))
    throw new UsageError(`--changed must be a fraction in (0, 1], not ${values.changed}`);
  return {
    rows: whole('rows', values.rows, 100),
    runs: whole('runs', values.runs, 1),
    changed,
    seed: whole('seed', values.seed, 0),
    fillfactor: fillfactor(values.fillfactor),
    databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
    out: path.resolve(values.out),
    argv,
  };
}

/** What the child process is asked to run: one runSync of the project's sync. */
interface ChildRequest {
  url: string;
  project: string;
  sync: string;
  full: boolean;
}

/** What it reports: runSync's wall time, and when the load's steps began (ms from the start). */
interface ChildReport {
  seconds: number;
  maxRssKb: number;
  status: string;
  loadId?: number;
  full: boolean;
  cursorFrom: string | null;
  counts: Record<string, number>;
  /** ms from runSync's start: the load registered, and each step begun. */
  marks: Record<string, number>;
  /** Every statement pgferry sent (on either database), by label: ms from call to answer, and calls. */
  queries: Record<string, { ms: number; calls: number }>;
  error?: string;
}

/** A statement's label: the ferry function or catalog table it names, else its first words. */
function queryLabel(text: string): string {
  const ferry = /\bferry\.(\w+)/.exec(text);
  if (ferry) return `ferry.${ferry[1]}`;
  return text.replace(/\s+/g, ' ').trim().split(' ').slice(0, 3).join(' ').slice(0, 40);
}

/**
 * Times every query sent through pg's Client (the pool's too) in this process: from the call
 * to the answer, by label. COPY streams are left alone (they are the stage step).
 */
function timeQueries(): Record<string, { ms: number; calls: number }> {
  const queries: Record<string, { ms: number; calls: number }> = {};
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const config = args[0] as string | { text?: string; submit?: unknown } | undefined;
    const text = typeof config === 'string' ? config : config?.text;
    const started = performance.now();
    const result = original.apply(this, args);
    if (text && typeof (result as Promise<unknown>)?.then === 'function') {
      const done = () => {
        const entry = (queries[queryLabel(text)] ??= { ms: 0, calls: 0 });
        entry.ms += performance.now() - started;
        entry.calls++;
      };
      (result as Promise<unknown>).then(done, done);
    }
    return result;
  };
  return queries;
}

/** The child process: one runSync, timed from its call to its return. */
async function child(request: ChildRequest): Promise<void> {
  const { openDatabase } = await import('../src/index.js');
  const { readProject } = await import('../src/project/project-file.js');
  const { runSync } = await import('../src/syncs/run-sync.js');
  const queries = timeQueries();
  const db = await openDatabase({ url: request.url, migrate: false });
  let report: ChildReport;
  try {
    const project = await readProject(request.project);
    const marks: Record<string, number> = {};
    for (const key of Object.keys(queries)) delete queries[key];
    const started = performance.now();
    const synced = await runSync(db.pool, project, request.sync, {
      full: request.full,
      onEvent: (event) => {
        const at = Math.round(performance.now() - started);
        if (event.type === 'registered') marks.registered = at;
        else if (event.type === 'step') marks[event.step] = at;
      },
    });
    const seconds = (performance.now() - started) / 1000;
    report = {
      seconds,
      maxRssKb: 0,
      status: synced.result.status,
      loadId: synced.result.loadId,
      full: synced.full,
      cursorFrom: synced.cursorFrom,
      counts: { ...synced.result.counts },
      marks,
      queries,
      error: synced.result.error,
    };
  } finally {
    await db.close();
  }
  report.maxRssKb = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** runSync in a child process of its own; also the child's whole life (start, modules, exit). */
async function runChild(request: ChildRequest): Promise<ChildReport & { processSeconds: number }> {
  const result = await runCommand(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench', 'sync.ts'), '--child', JSON.stringify(request)],
    { cwd: ROOT, measureMemory: false },
  );
  const last = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !last.startsWith('{')) {
    throw new Error(`the sync child process failed (exit ${result.code}):\n${tail(result.stderr, 10)}`);
  }
  return { ...(JSON.parse(last) as ChildReport), processSeconds: result.seconds };
}

/** `count` distinct ids in 1..rows. */
function randomIds(rows: number, count: number, random: () => number): number[] {
  const ids = new Set<number>();
  while (ids.size < count) ids.add(1 + Math.floor(random() * rows));
  return [...ids];
}

/** Untimed, before each case: a checkpoint, so that none started earlier lands in its time. */
async function checkpoint(pool: pg.Pool): Promise<void> {
  await pool.query('checkpoint').catch(() => {});
}

/** Rows and a checksum over id, sku, name, price: the same on both sides when they agree. */
async function fingerprint(pool: pg.Pool, table: string, where = 'true'): Promise<{ rows: number; sum: string }> {
  const { rows } = await pool.query<{ rows: string; sum: string | null }>(
    `select count(*) as rows,
            sum(hashtextextended(concat_ws('|', id, sku, name, price::text), 0)::numeric)::text as sum
     from ${table} where ${where}`,
  );
  return { rows: Number(rows[0].rows), sum: rows[0].sum ?? '0' };
}

/** The source table: N rows, values from the seed, timestamps spread over 2025; an index on updated_at. */
async function createSource(url: string, rows: number, seed: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`drop table if exists ${SOURCE_TABLE}`);
    await client.query(`create table ${SOURCE_TABLE} (
      id         bigint primary key,
      sku        text not null,
      name       text not null,
      price      numeric(12,2) not null,
      updated_at timestamptz not null)`);
    await client.query('select setseed($1)', [((seed % 2000) - 1000) / 1000]);
    await client.query(
      `insert into ${SOURCE_TABLE}
       select g, 'SKU-' || lpad(g::text, 9, '0'), 'Product ' || substr(md5(g::text), 1, 16),
              round((1 + random() * 999)::numeric, 2),
              timestamptz '2025-01-01 00:00:00+00' + random() * interval '365 days'
       from generate_series(1, $1::bigint) g`,
      [rows],
    );
    await client.query(`create index ${SOURCE_TABLE}_updated_at on ${SOURCE_TABLE} (updated_at)`);
    await client.query(`vacuum analyze ${SOURCE_TABLE}`);
  } finally {
    await client.end();
  }
}

/** The target's schema and table, protected; pgferry's schema; the steady tenant. */
async function createTarget(pool: pg.Pool, fillfactor: number): Promise<void> {
  const client = await pool.connect();
  try {
    await migrate(client);
  } finally {
    client.release();
  }
  await pool.query(`create schema if not exists ${SCHEMA}`);
  await pool.query(`create table if not exists ${TARGET} (
    tenant_id  text not null,
    id         bigint not null,
    sku        text not null,
    name       text,
    price      numeric(12,2),
    updated_at timestamptz,
    primary key (tenant_id, id))`);
  // Set on a table an earlier invocation made too: the truncate below rewrites it empty.
  await pool.query(`alter table ${TARGET} set (fillfactor = ${fillfactor})`);
  const { rows } = await pool.query('select 1 from ferry.tenants where slug = $1', [STEADY_TENANT]);
  if (rows.length === 0) await addTenant(pool, STEADY_TENANT);
  await protectTable(pool, TARGET);
  // A run of an earlier invocation may have left rows and a cursor: start from nothing.
  await pool.query(`truncate ${TARGET}`);
  await pool.query('update ferry.sync_state set cursor = null, cursor_type = null where sync_name = $1', [STEADY_SYNC]);
}

/** pgferry.yaml and the mapping: the steady sync, and one first-load sync per run (a fresh tenant each). */
async function writeProject(dir: string, firstTenants: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'items.sql'),
    `-- target: ${TARGET}
-- key: id
-- on_conflict: update
select s.id as id, s.sku as sku, s.name as name, s.price as price, s.updated_at as updated_at
from staged s
`,
  );
  const sync = (name: string, tenant: string) => `  ${name}:
    from: env:${SOURCE_ENV}
    table: ${SOURCE_TABLE}
    cursor: updated_at
    tenant: ${tenant}
    mapping: items
    mode: upsert
`;
  const file = path.join(dir, 'pgferry.yaml');
  await writeFile(
    file,
    `mappings: .\nsyncs:\n${sync(STEADY_SYNC, STEADY_TENANT)}${firstTenants.map((t, i) => sync(`first_${i + 1}`, t)).join('')}`,
  );
  return file;
}

/** One timed run of a case: runSync's time and where it went, and what the server did. */
interface Sample {
  seconds: number;
  /** The child process from spawn to exit: what `pgferry sync` on the command line would take. */
  processSeconds: number;
  maxRssKb: number;
  counts: Record<string, number>;
  /** ms of runSync: before (until the load registered), compile, the load's steps, rest. */
  parts: Record<string, number>;
  /** The source query alone, run again afterwards under EXPLAIN ANALYZE (warm cache). */
  sourceQueryMs: number;
  sourcePlan: string;
  walBytes: number;
  /** Rows of the target whose current version the run wrote (xmin newer than its start). */
  written: number;
  /** ms per statement label (see timeQueries). */
  queries: Record<string, number>;
}

interface Bench {
  pool: pg.Pool;
  source: pg.Pool;
  url: string;
  project: string;
  options: Options;
  firstTenants: string[];
  /** The source's fingerprint, kept current as the increments change it. */
  sourcePrint: { rows: number; sum: string };
}

const PARTS = ['before', 'compile', 'stage', 'transform', 'promote', 'verify', 'cleanup', 'rest'] as const;

/** Runs one sync in a child process and gathers its sample (all the gathering untimed). */
async function runCase(bench: Bench, sync: string, full: boolean, tenant: string): Promise<Sample> {
  await checkpoint(bench.pool);
  const { rows: start } = await bench.pool.query<{ lsn: string; xid: string }>(
    'select pg_current_wal_lsn()::text as lsn, (txid_current() % 4294967296)::text as xid',
  );
  const report = await runChild({ url: bench.url, project: bench.project, sync, full });
  if (report.status !== 'succeeded' || report.loadId === undefined) {
    throw new Error(`sync ${sync} ended ${report.status}: ${report.error ?? ''}`);
  }
  const { rows: after } = await bench.pool.query<{ wal: string; written: string }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint::text as wal,
            (select count(*) from ${TARGET} where tenant_id = $3 and xmin::text::bigint >= $2::bigint)::text as written`,
    [start[0].lsn, start[0].xid, tenant],
  );
  const { rows: loads } = await bench.pool.query<{ timings: Record<string, number>; query: string }>(
    `select timings, options -> 'source' ->> 'query' as query from ferry.loads where id = $1`,
    [report.loadId],
  );
  const { timings, query } = loads[0];
  const before = report.marks.registered ?? 0;
  const compile = (report.marks.stage ?? before) - before;
  const parts: Record<string, number> = { before, compile };
  for (const step of ['stage', 'transform', 'promote', 'verify', 'cleanup']) parts[step] = timings[step] ?? 0;
  parts.rest = report.seconds * 1000 - Object.values(parts).reduce((a, b) => a + b, 0);
  const explained = await explain(bench.source, query);
  return {
    seconds: report.seconds,
    processSeconds: report.processSeconds,
    maxRssKb: report.maxRssKb,
    counts: report.counts,
    parts,
    sourceQueryMs: explained.ms,
    sourcePlan: explained.plan,
    walBytes: Number(after[0].wal),
    written: Number(after[0].written),
    queries: Object.fromEntries(Object.entries(report.queries).map(([label, q]) => [label, q.ms])),
  };
}

/** The source query under EXPLAIN ANALYZE: its time, and how it reads the table. */
async function explain(source: pg.Pool, query: string): Promise<{ ms: number; plan: string }> {
  const { rows } = await source.query(`explain (analyze, format json) ${query}`);
  const top = rows[0]['QUERY PLAN'][0] as { Plan: PlanNode; 'Execution Time': number };
  const scans: string[] = [];
  const walk = (node: PlanNode) => {
    if (node['Relation Name'] || node['Index Name']) {
      scans.push(`${node['Node Type']}${node['Index Name'] ? ` (${node['Index Name']})` : ''}`);
    }
    for (const sub of node.Plans ?? []) walk(sub);
  };
  walk(top.Plan);
  return { ms: top['Execution Time'], plan: scans.join(' ← ') || top.Plan['Node Type'] };
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

type CaseId = 'F' | 'R' | 'I' | 'U';

interface CaseResult {
  id: CaseId;
  label: string;
  samples: Sample[];
  problems: string[];
  error?: string;
}

const LABELS: Record<CaseId, string> = {
  F: 'first full load → empty target (fresh tenant)',
  R: 'full re-pull (`--full`) → loaded target',
  I: 'increment → loaded target',
  U: 'floor: one `UPDATE` of as many random rows of the target, by key (no pgferry)',
};

/** One run of a case, its untimed preparation and checks included. */
async function runOnce(bench: Bench, id: CaseId, round: number, problem: (m: string) => void): Promise<Sample> {
  const { pool, options } = bench;
  const n = options.rows;
  const expectTarget = async (tenant: string) => {
    const print = await fingerprint(pool, TARGET, `tenant_id = '${tenant}'`);
    if (print.rows !== bench.sourcePrint.rows)
      problem(`the target has ${print.rows} rows, the source ${bench.sourcePrint.rows}`);
    else if (print.sum !== bench.sourcePrint.sum) problem('the target’s checksum differs from the source’s');
  };
  if (id === 'F') {
    const tenant = bench.firstTenants[round];
    await addTenant(pool, tenant);
    await pool.query(`vacuum analyze ${TARGET}`);
    const sample = await runCase(bench, `first_${round + 1}`, true, tenant);
    const c = sample.counts;
    if (c.read !== n || c.inserted !== n) problem(`read ${c.read}, inserted ${c.inserted}, not ${n}`);
    if (sample.written !== n) problem(`${sample.written} rows written, not ${n}`);
    await expectTarget(tenant);
    // The fresh tenant's rows go again: R and I meet a target of the steady tenant's rows alone.
    await pool.query(`delete from ${TARGET} where tenant_id = $1`, [tenant]);
    return sample;
  }
  if (id === 'U') return updateFloor(bench, round);
  if (id === 'R') {
    await pool.query(`vacuum analyze ${TARGET}`);
    const sample = await runCase(bench, STEADY_SYNC, true, STEADY_TENANT);
    const c = sample.counts;
    if (c.read !== n || c.unchanged !== n) problem(`read ${c.read}, unchanged ${c.unchanged}, not ${n}`);
    if (sample.written !== 0) problem(`the re-pull of unchanged rows rewrote ${sample.written}`);
    await expectTarget(STEADY_TENANT);
    return sample;
  }
  // I: 1% of the source's rows change (price, and updated_at moved to the time of the change:
  // clock_timestamp(), each row its own, as rows changed one by one by an application).
  const changed = Math.max(1, Math.round(n * options.changed));
  const ids = randomIds(n, changed, prng(options.seed * 7919 + round + 1));
  await bench.source.query(
    `update ${SOURCE_TABLE} set price = price + 0.01, updated_at = clock_timestamp() where id = any($1::bigint[])`,
    [ids],
  );
  bench.sourcePrint = await fingerprint(bench.source, SOURCE_TABLE);
  const { rows: state } = await pool.query<{ cursor: string }>(
    'select cursor from ferry.sync_state where sync_name = $1',
    [STEADY_SYNC],
  );
  const { rows: due } = await bench.source.query<{ n: string }>(
    `select count(*) as n from ${SOURCE_TABLE} where updated_at >= $1::timestamptz`,
    [state[0].cursor],
  );
  const expected = Number(due[0].n);
  await pool.query(`vacuum analyze ${TARGET}`);
  const sample = await runCase(bench, STEADY_SYNC, false, STEADY_TENANT);
  const c = sample.counts;
  sample.counts = { ...c, changedInSource: changed, ties: expected - changed };
  if (c.read !== expected) problem(`read ${c.read}, not the ${expected} rows at or after the cursor`);
  if (c.updated !== changed || c.inserted !== 0)
    problem(`updated ${c.updated}, inserted ${c.inserted}; changed ${changed}`);
  if (sample.written !== changed) problem(`${sample.written} rows written, not ${changed}`);
  await expectTarget(STEADY_TENANT);
  return sample;
}

/**
 * U, the floor of the increment's writes: one UPDATE, as the superuser (no RLS, no undo log),
 * of as many random rows of the steady tenant by primary key, values unchanged (the target
 * still equals the source). Timed here, on a connection of the harness.
 */
async function updateFloor(bench: Bench, round: number): Promise<Sample> {
  const { pool, options } = bench;
  const count = Math.max(1, Math.round(options.rows * options.changed));
  const ids = randomIds(options.rows, count, prng(options.seed * 104_729 + round + 1));
  await pool.query(`vacuum analyze ${TARGET}`);
  await checkpoint(pool);
  const { rows: start } = await pool.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  const started = performance.now();
  const result = await pool.query(
    `update ${TARGET} set price = price where tenant_id = $1 and id = any($2::bigint[])`,
    [STEADY_TENANT, ids],
  );
  const seconds = (performance.now() - started) / 1000;
  const { rows: wal } = await pool.query<{ bytes: string }>(
    'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint::text as bytes',
    [start[0].lsn],
  );
  const zero = Object.fromEntries(PARTS.map((p) => [p, 0]));
  return {
    seconds,
    processSeconds: seconds,
    maxRssKb: 0,
    counts: { read: 0, updated: result.rowCount ?? 0 },
    parts: zero,
    sourceQueryMs: 0,
    sourcePlan: '—',
    walBytes: Number(wal[0].bytes),
    written: result.rowCount ?? 0,
    queries: {},
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!options) {
    console.log(USAGE);
    return;
  }
  const { url, embedded, tmp, close } = await openBenchServer('sync', options.databaseUrl, log);
  try {
    const origin = embedded ? 'embedded' : 'the given server';
    const sourceName = `${decodeURIComponent(new URL(url).pathname.slice(1)) || 'postgres'}_sync_source`;
    const sourceUrl = await createDatabase(url, sourceName);
    process.env[SOURCE_ENV] = sourceUrl;
    const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'pgferry-bench-sync' });
    const source = new pg.Pool({ connectionString: sourceUrl, max: 2, application_name: 'pgferry-bench-sync' });
    pool.on('error', () => {});
    source.on('error', () => {});
    try {
      const started = performance.now();
      const loadStart = loadAverage();
      log(`source: ${options.rows.toLocaleString('en-US')} rows in ${sourceName}.${SOURCE_TABLE}`);
      await createSource(sourceUrl, options.rows, options.seed);
      await createTarget(pool, options.fillfactor);
      const stamp = Date.now().toString(36);
      const firstTenants = Array.from({ length: options.runs }, (_, i) => `sync_first_${stamp}_${i + 1}`);
      const project = await writeProject(path.join(tmp, 'project'), firstTenants);
      const bench: Bench = {
        pool,
        source,
        url,
        project,
        options,
        firstTenants,
        sourcePrint: await fingerprint(source, SOURCE_TABLE),
      };
      // Untimed: the steady tenant's first load, which R and I then work on.
      const initial = await runChild({ url, project, sync: STEADY_SYNC, full: true });
      if (initial.status !== 'succeeded' || initial.counts.inserted !== options.rows) {
        throw new Error(`the initial load ended ${initial.status}: ${initial.error ?? JSON.stringify(initial.counts)}`);
      }
      log(`initial load of the steady tenant: ${initial.seconds.toFixed(2)} s (untimed)`);

      const results = new Map<CaseId, CaseResult>();
      const ids: CaseId[] = ['F', 'R', 'I', 'U'];
      for (const id of ids) results.set(id, { id, label: LABELS[id], samples: [], problems: [] });
      for (let round = 0; round < options.runs; round++) {
        const shift = round % ids.length;
        for (const id of [...ids.slice(shift), ...ids.slice(0, shift)]) {
          const result = results.get(id)!;
          if (result.error) continue;
          const problem = (message: string) => {
            if (!result.problems.includes(message)) result.problems.push(message);
            log(`  ⚠ (${id}) ${message}`);
          };
          try {
            const sample = await runOnce(bench, id, round, problem);
            result.samples.push(sample);
            const parts = PARTS.map((p) => `${p} ${(sample.parts[p] / 1000).toFixed(2)}`).join(', ');
            const slowest = Object.entries(sample.queries)
              .sort((a, b) => b[1] - a[1])
              .slice(0, 3)
              .map(([label, ms]) => `${label} ${(ms / 1000).toFixed(2)}`)
              .join(', ');
            log(
              `[round ${round + 1}/${options.runs}] (${id}) ${LABELS[id]}: ${sample.seconds.toFixed(2)} s` +
                (id === 'U'
                  ? `, WAL ${Math.round(sample.walBytes / 2 ** 20)} MB`
                  : ` (${parts}); slowest statements: ${slowest}; read ${sample.counts.read}; ` +
                    `source query ${sample.sourceQueryMs.toFixed(0)} ms [${sample.sourcePlan}]`),
            );
          } catch (error) {
            result.error = error instanceof Error ? error.message : String(error);
            log(`[round ${round + 1}/${options.runs}] (${id}) FAILED\n${result.error}`);
          }
        }
      }
      const { rows: version } = await pool.query<{ v: string }>(`select current_setting('server_version') as v`);
      const section = sectionMarkdown(options, [...results.values()], {
        server: `PostgreSQL ${version[0].v} ${origin}`,
        minutes: (performance.now() - started) / 60000,
        load: `${loadStart} at the start, ${loadAverage()} at the end`,
      });
      console.log(`\n${section}`);
      await writeSections(options.out, section);
      log(`section "${headingOf(options).slice(3)}" written to ${path.relative(process.cwd(), options.out)}`);
    } finally {
      await pool.end();
      await source.end();
    }
  } finally {
    await close();
  }
}

/** The 1-minute load average: other work on the machine shows here. */
function loadAverage(): string {
  return os.loadavg()[0].toFixed(2);
}

function log(message: string): void {
  console.log(message);
}

const PART_NOTES: Record<(typeof PARTS)[number], string> = {
  before:
    'until the load is registered: the sync declared, its lock, the source query described, the mapping read, the load registered and claimed',
  compile: 'the mapping compiled, the staging table made',
  stage: "the source's `COPY (query) TO STDOUT` piped into the staging `COPY`: the source query runs here",
  transform: 'types checked, duplicates resolved, into the work table',
  promote: 'plan, `INSERT`/`UPDATE` under RLS and their undo log, rejects to the catalog (finish_promotion)',
  verify: 'the counts reconciled',
  cleanup: 'staging and work tables dropped',
  rest: 'the rest of runSync: rejects counted, the promotion’s lock, finish_sync (the new cursor), commit, timings, audit',
};

function sectionMarkdown(
  options: Options,
  results: CaseResult[],
  run: { server: string; minutes: number; load: string },
): string {
  const date = new Date().toISOString().slice(0, 10);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const s = (n: number) => n.toFixed(2);
  const med = (r: CaseResult, f: (x: Sample) => number) => median(r.samples.map(f));
  const byId = new Map(results.map((r) => [r.id, r]));
  const ok = (id: CaseId) => (byId.get(id)?.samples.length ?? 0) > 0;
  const lines = [
    headingOf(options),
    '',
    `Measured on ${date} on this ${os.availableParallelism()}-core machine, ${run.server} ` +
      `(\`npm run bench:sync -- ${options.argv.join(' ')}\`, ${run.minutes.toFixed(1)} min in all, load average ${run.load}; see bench/sync.ts). ` +
      `The source: \`${SOURCE_TABLE}\` (id bigint primary key, sku, name, price numeric(12,2), updated_at timestamptz ` +
      `with an index) of ${fmt(options.rows)} rows in a second database on the same server. The sync ` +
      `(pgferry.yaml: \`table: ${SOURCE_TABLE}\`, \`cursor: updated_at\`, \`mode: upsert\`) writes the protected ` +
      `\`${TARGET}\` (primary key (tenant_id, id)${options.fillfactor === 100 ? '' : `, fillfactor ${options.fillfactor}`}). Each run is one \`runSync\` in a child process of its own, ` +
      `timed from its call to its return; the cases interleave, their order rotating from run to run; a ` +
      'checkpoint and `vacuum analyze` of the target come before each, untimed.',
    '',
    `- **F**: the first full load of the table into an empty target: a fresh tenant each run (the realistic first migration; its rows are deleted again afterwards).`,
    `- **R**: \`pgferry sync --full\`: the whole table pulled again into the loaded target (every row unchanged).`,
    `- **I**: the increment: ${options.changed * 100}% of the source's rows changed (random ids; price and ` +
      '`updated_at = clock_timestamp()`, each row its own time, as an application changing rows one by one), ' +
      'then `pgferry sync`: the rows at or after the cursor, the changed ones and the ties at the cursor.',
    '',
    '| case | median s | runs (s) | rows read (last run) | rows written | source query alone | peak RSS | WAL | child process s |',
    '|---|--:|---|---|--:|---|--:|--:|--:|',
  ];
  for (const r of results) {
    if (!r.samples.length) {
      lines.push(`| ${r.id} ${r.label} | failed | | | | | | | |`);
      continue;
    }
    const last = r.samples[r.samples.length - 1];
    const pgferry = r.id !== 'U';
    const read =
      r.id === 'I'
        ? `${fmt(last.counts.read)} (${fmt(last.counts.changedInSource)} changed + ${fmt(last.counts.ties)} at the cursor)`
        : pgferry
          ? fmt(last.counts.read)
          : '—';
    lines.push(
      `| ${r.id} ${r.label}${r.problems.length ? ' ⚠' : ''} | ${s(med(r, (x) => x.seconds))} | ` +
        `${r.samples.map((x) => s(x.seconds)).join(', ')} | ${read} | ${fmt(med(r, (x) => x.written))} | ` +
        (pgferry
          ? `${fmt(med(r, (x) => x.sourceQueryMs))} ms, ${last.sourcePlan} | ${fmt(med(r, (x) => x.maxRssKb) / 1024)} MB | `
          : '— | — | ') +
        `${fmt(med(r, (x) => x.walBytes) / 2 ** 20)} MB | ${pgferry ? s(med(r, (x) => x.processSeconds)) : '—'} |`,
    );
  }
  lines.push('');
  if (ok('I') && (ok('F') || ok('R'))) {
    const inc = med(byId.get('I')!, (x) => x.seconds);
    const ratio = (id: CaseId) => (ok(id) ? (inc / med(byId.get(id)!, (x) => x.seconds)) * 100 : undefined);
    const f = ratio('F');
    const r = ratio('R');
    const worst = Math.max(f ?? 0, r ?? 0);
    const pct = (x: number | undefined) => (x === undefined ? '—' : `${x.toFixed(1)}%`);
    const floorS = ok('U') ? med(byId.get('U')!, (x) => x.seconds) : undefined;
    const fullS = ok('F') ? med(byId.get('F')!, (x) => x.seconds) : undefined;
    const floor =
      floorS === undefined
        ? ''
        : ` The floor U takes ${s(floorS)} s: the increment is ${(inc / floorS).toFixed(1)}× it` +
          (fullS === undefined
            ? '.'
            : `, and U alone is ${pct((floorS / fullS) * 100)} of F: 5% of F (${s(fullS * 0.05)} s) would leave ` +
              `${s(fullS * 0.05 - floorS)} s for all but the writes: pulling, staging, typing and looking up the rows, the undo log, and the fixed costs.`);
    lines.push(
      `**Increment / full: ${pct(f)} of the first full load (F), ${pct(r)} of the full re-pull (R).** ` +
        `Target ≤ 5%: ${worst <= 5 ? 'met' : `**missed** (${pct(worst)})`}.${floor}`,
      '',
    );
  }
  lines.push(...partsMarkdown(results), ...statementsMarkdown(results), ...readingMarkdown(options, byId));
  for (const r of results) {
    for (const p of r.problems) lines.push(`- ⚠ (${r.id}) ${p}`);
    if (r.error) lines.push(`- ✗ (${r.id}) failed: ${r.error.split('\n')[0]}`);
  }
  return lines.join('\n').replace(/\n*$/, '\n');
}

/** Where runSync's time went, per case: median ms of each part. */
function partsMarkdown(results: CaseResult[]): string[] {
  const lines = [
    'Where the time goes (median ms of each part of `runSync`; the load’s steps from `ferry.loads.timings`):',
    '',
    `| case | ${PARTS.join(' | ')} |`,
    `|---|${PARTS.map(() => '--:').join('|')}|`,
  ];
  for (const r of results) {
    if (!r.samples.length || r.id === 'U') continue;
    const cells = PARTS.map((p) => Math.round(median(r.samples.map((x) => x.parts[p]))).toLocaleString('en-US'));
    lines.push(`| ${r.id} | ${cells.join(' | ')} |`);
  }
  lines.push('', ...PARTS.map((p) => `- *${p}*: ${PART_NOTES[p]}.`), '');
  return lines;
}

/** The median ms of a statement label over a case's runs (0 where a run did not send it). */
function statementMs(r: CaseResult | undefined, label: string): number | undefined {
  if (!r?.samples.length) return undefined;
  return median(r.samples.map((x) => x.queries[label] ?? 0));
}

/** The increment's slowest statements, as the child process timed them, beside the full cases'. */
function statementsMarkdown(results: CaseResult[]): string[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const inc = byId.get('I');
  if (!inc?.samples.length) return [];
  const labels = [...new Set(inc.samples.flatMap((x) => Object.keys(x.queries)))]
    .map((label) => ({ label, ms: statementMs(inc, label)! }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 8);
  const cell = (id: CaseId, label: string) => {
    const ms = statementMs(byId.get(id), label);
    return ms === undefined ? '—' : Math.round(ms).toLocaleString('en-US');
  };
  return [
    'The increment’s slowest statements (median ms from the call to the answer, timed in the child process ' +
      'around pg’s `Client.query`; the COPY streams of the stage step are not among them):',
    '',
    '| statement | I | F | R |',
    '|---|--:|--:|--:|',
    ...labels.map(({ label }) => `| \`${label}\` | ${cell('I', label)} | ${cell('F', label)} | ${cell('R', label)} |`),
    '',
  ];
}

/** A short reading of the increment: what dominates it. */
function readingMarkdown(options: Options, byId: Map<CaseId, CaseResult>): string[] {
  const inc = byId.get('I');
  if (!inc?.samples.length) return [];
  const total = median(inc.samples.map((x) => x.seconds)) * 1000;
  const parts = PARTS.map((p) => ({ p, ms: median(inc.samples.map((x) => x.parts[p])) })).sort((a, b) => b.ms - a.ms);
  const share = (ms: number) => `${Math.round((ms / total) * 100)}%`;
  const ms = (n: number | undefined) => `${Math.round(n ?? 0).toLocaleString('en-US')} ms`;
  const top = parts
    .slice(0, 3)
    .map(({ p, ms: t }) => `${p} ${ms(t)} (${share(t)})`)
    .join(', ');
  const sourceMs = median(inc.samples.map((x) => x.sourceQueryMs));
  const fixedParts = ['before', 'compile', 'verify', 'cleanup', 'rest'] as const;
  const fixed = fixedParts.reduce((sum, p) => sum + median(inc.samples.map((x) => x.parts[p])), 0);
  const rows = Math.round(options.rows * options.changed);
  const proc = median(inc.samples.map((x) => x.processSeconds));
  const plan = statementMs(inc, 'ferry.plan_promotion');
  const batches = statementMs(inc, 'ferry.promote_batch');
  const finish = statementMs(inc, 'ferry.finish_promotion');
  const floor = byId.get('U')?.samples.length ? median(byId.get('U')!.samples.map((x) => x.seconds)) * 1000 : undefined;
  // Per pulled row, the plan of the increment (a lookup, and a page read, a row) against that of
  // the full re-pull.
  const planFull = statementMs(byId.get('R'), 'ferry.plan_promotion');
  const readInc = inc.samples[inc.samples.length - 1].counts.read;
  const planNote =
    plan !== undefined && planFull !== undefined && readInc > 0
      ? `: ${((plan * 1000) / readInc).toFixed(1)} µs a pulled row here, ${((planFull * 1000) / options.rows).toFixed(1)} µs ` +
        'in the full re-pull (R), whose hash join reads the target in order'
      : '';
  const floorWal = byId.get('U')?.samples.length
    ? Math.round(median(byId.get('U')!.samples.map((x) => x.walBytes)) / 2 ** 20)
    : 0;
  const lines = [
    `Reading: the increment (${ms(total)} for ${rows.toLocaleString('en-US')} changed rows) spends most in ${top}. ` +
      `The source query is not what costs: ${ms(sourceMs)} alone (${share(sourceMs)}; ` +
      `${inc.samples[inc.samples.length - 1].sourcePlan}), and the whole stage step, query and COPY, ` +
      `${ms(median(inc.samples.map((x) => x.parts.stage)))}. Inside promote: \`plan_promotion\` ${ms(plan)} ` +
      `(${share(plan ?? 0)}; the pulled rows looked up by key in the target (PostgreSQL 17 and later: one scan of the key ` +
      `index for all of them), to tell insert, update and unchanged apart, their pages read into shared buffers${planNote}), \`promote_batch\` ${ms(batches)} ` +
      `(${share(batches ?? 0)}; one UPDATE a batch, each row found again by the ctid the plan saw; the batch's undo ` +
      `rows into the catalog in the same statement), \`finish_promotion\` ${ms(finish)} (rejects and counts into the catalog).` +
      (floor === undefined
        ? ''
        : ` A bare \`UPDATE\` of as many random rows (U) takes ${ms(floor)}, and writes ${floorWal} MB of WAL: ` +
          'rows at random land on pages of their own, each written whole to the WAL the first time after a ' +
          'checkpoint (a full-page image).') +
      ` The parts that do not grow with the rows pulled (before, compile, verify, cleanup, rest) add up to ` +
      `${ms(fixed)} (${share(fixed)}). Not counted: the process's start and module loading, which ` +
      `\`pgferry sync\` on the command line adds (the child process, started through tsx, took ${proc.toFixed(2)} s ` +
      'from spawn to exit).',
    '',
  ];
  return lines;
}

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3] ?? '{}') as ChildRequest);
} else {
  main().catch((error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`bench:sync: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    const cause = error instanceof Error && error.cause instanceof Error ? `\n  cause: ${error.cause.message}` : '';
    console.error(`bench:sync: ${error instanceof Error ? error.message : String(error)}${cause}`);
    process.exitCode = 1;
  });
}
