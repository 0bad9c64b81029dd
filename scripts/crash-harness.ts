// The crash harness (issue 5): N runs, each killing `pgferry load` with SIGKILL at a random
// moment of a load of a generated catalog, then finishing it the way an operator would
// (`pgferry resume`, or loading again when it died before registering), then comparing the
// tenant's rows and counts with those of an uninterrupted load. Every run must match exactly.
//
// Then the fault harness (scripts/fault-harness.ts, issue 23) runs with the same options: the
// claim's or a step's connection cut at a random moment, with a concurrent resume.
//
// usage: npm run crash -- [--runs 20] [--rows 200000] [--seed 1] [--database-url URL]
//        (it builds dist/ first: the runs use the CLI, bin/pgferry.js). Without a URL it starts an embedded PostgreSQL in a temporary
//        folder and removes it at the end. Exits 1 unless every run matches.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { CATALOG_COLUMNS, ensureCatalog } from '../bench/generate-catalog.js';
import { loadCounts } from '../src/load/load-counts.js';
import { rowsDifferingFrom } from '../test/helpers/tenant-rows.js';
import { faultHarness } from './fault-harness.js';
import { openHarnessDatabase } from './harness-database.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const BIN = path.join(ROOT, 'bin', 'pgferry.js');
const MAPPING = path.join(ROOT, 'bench', 'catalog.sql');

export interface HarnessOptions {
  runs: number;
  rows: number;
  seed: number;
  databaseUrl?: string;
  log?: (line: string) => void;
}

export interface RunOutcome {
  run: number;
  killedAfterMs: number;
  /** The load's status when its process died (as the catalog had it), or none: not registered. */
  statusAtKill: string;
  finishedBy: 'resume' | 'load again' | 'nothing (it had finished)';
  exact: boolean;
  problem?: string;
}

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(url: string, args: string[], killAfterMs?: number): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the harness; resolves with each run's outcome. */
export async function crashHarness(options: HarnessOptions): Promise<RunOutcome[]> {
  const log = options.log ?? (() => {});
  const tenants = Array.from({ length: options.runs }, (_, i) => `run${i + 1}`);
  const db = await openHarnessDatabase({ harness: 'crash', tenants, databaseUrl: options.databaseUrl });
  const { pool, url: dbUrl } = db;
  try {
    const { file } = await ensureCatalog(path.join(ROOT, 'bench', 'data'), {
      rows: options.rows,
      seed: options.seed,
      dirty: 0.01,
    });
    const started = performance.now();
    const reference = await cli(dbUrl, ['load', file, '-t', 'reference', '-m', MAPPING, '--json']);
    const referenceMs = performance.now() - started;
    if (reference.code !== 0) throw new Error(`the reference load failed: ${reference.stderr}`);
    const referenceCounts = JSON.parse(reference.stdout).counts;
    log(`reference load: ${Math.round(referenceMs)} ms, ${JSON.stringify(referenceCounts)}`);

    const outcomes: RunOutcome[] = [];
    for (let run = 1; run <= options.runs; run++) {
      const tenant = `run${run}`;
      // Anywhere from the start of the process to just after the reference load's end.
      const killedAfterMs = Math.round(Math.random() * referenceMs * 1.1);
      await cli(dbUrl, ['load', file, '-t', tenant, '-m', MAPPING], killedAfterMs);
      const { rows } = await pool.query(
        `select l.id, l.status from ferry.loads l join ferry.tenants t on t.id = l.tenant_id
         where t.slug = $1 order by l.id desc limit 1`,
        [tenant],
      );
      const statusAtKill = rows[0]?.status ?? 'none';
      let finishedBy: RunOutcome['finishedBy'];
      let counts: unknown;
      if (!rows[0]) {
        finishedBy = 'load again';
        const again = await cli(dbUrl, ['load', file, '-t', tenant, '-m', MAPPING, '--json']);
        counts = JSON.parse(again.stdout).counts;
      } else {
        const resumed = await cli(dbUrl, ['resume', String(rows[0].id), '--json']);
        if (resumed.code !== 0) throw new Error(`resume of load ${rows[0].id} failed: ${resumed.stderr}`);
        const outcome = JSON.parse(resumed.stdout);
        finishedBy = outcome.outcome === 'finished' ? 'nothing (it had finished)' : 'resume';
        counts = await loadCounts(pool, rows[0].id);
      }
      const differing = await rowsDifferingFrom(pool, 'bench.products', CATALOG_COLUMNS, tenant, 'reference');
      const sameCounts = JSON.stringify(counts) === JSON.stringify(referenceCounts);
      const exact = differing === 0 && sameCounts;
      const problem = exact
        ? undefined
        : `${differing} rows differ; counts ${JSON.stringify(counts)} vs ${JSON.stringify(referenceCounts)}`;
      outcomes.push({ run, killedAfterMs, statusAtKill, finishedBy, exact, problem });
      log(
        `run ${run}: killed after ${killedAfterMs} ms (${statusAtKill}), finished by ${finishedBy}: ` +
          (exact ? 'exact' : `NOT EXACT: ${problem}`),
      );
    }
    return outcomes;
  } finally {
    await db.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '20' },
      rows: { type: 'string', default: '200000' },
      seed: { type: 'string', default: '1' },
      'database-url': { type: 'string' },
    },
  });
  const outcomes = await crashHarness({
    runs: Number(values.runs),
    rows: Number(values.rows),
    seed: Number(values.seed),
    databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
    log: (line) => console.log(line),
  });
  const exact = outcomes.filter((o) => o.exact).length;
  console.log(`${outcomes.length} runs / ${exact} exact matches`);
  const faults = await faultHarness({
    runs: Number(values.runs),
    rows: Number(values.rows),
    seed: Number(values.seed),
    databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
    log: (line) => console.log(`fault ${line}`),
  });
  const faultsExact = faults.filter((o) => o.exact).length;
  console.log(`fault harness: ${faults.length} runs / ${faultsExact} ended exactly once`);
  process.exit(exact === outcomes.length && faultsExact === faults.length ? 0 : 1);
}
