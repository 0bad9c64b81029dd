// pgferry's benchmark (issue 3): on one PostgreSQL server, in one run, interleaved, the floor
// (psql \copy into an UNLOGGED text table), psql \copy into the typed target, pgferry's
// staging, full load and re-loads, and pgloader when installed. See bench/README.md.
//
// usage: npx tsx bench/run.ts [--sizes 1000000,5000000] [--rows N] [--large] [--repeat 3]
//                             [--database-url URL] [--dirty 0.01] [--changed 0.1] [--seed 1]
//        npx tsx bench/run.ts --rollback [options]   (bench/rollback.ts)
//        npx tsx bench/run.ts --tenant-backup [options]   (bench/tenant-backup.ts)
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

import { MAX_JOBS } from '../src/index.js';
import { DATA_DIR, MAPPING, openBenchServer, ROOT, runChild, setUp, TARGET, TENANT } from './bench-setup.js';
import { findExecutable, runCommand, tail } from './commands.js';
import { CATALOG_COLUMNS, type CatalogKey, type CatalogStats, ensureCatalog } from './generate-catalog.js';
import {
  type CaseResult,
  isSizeHeading,
  type Machine,
  median,
  resultsMarkdown,
  type Sample,
  type SizeResult,
  sizeSection,
} from './report.js';
import { writeOwnedSections } from './results-file.js';
import { benchRollback, ROLLBACK_USAGE } from './rollback.js';
import { benchTenantBackup, TENANT_BACKUP_USAGE } from './tenant-backup.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FLOOR_TABLE = 'bench.stage';
const COLUMN_LIST = CATALOG_COLUMNS.join(', ');

const USAGE = `usage: npx tsx bench/run.ts [options]     (or: npm run bench -- [options])

  --sizes <n,n,…>        rows per file, one benchmark each (default: 1000000,5000000)
  --rows <n>             a single size (overrides --sizes)
  --large                add 10,000,000 rows
  --repeat <n>           runs of each case, interleaved round-robin (default: 3)
  --database-url <url>   server to use, as its superuser (default: $DATABASE_URL, else an
                         embedded PostgreSQL 18 in a temporary folder, removed at the end)
  --seed <n>             PRNG seed of the generated catalogs (default: 1)
  --dirty <fraction>     dirt of the extra dirty-file case 4d; 0 leaves it out (default: 0.01)
  --changed <fraction>   rows changed in the file of case 5b; 0 leaves it out (default: 0.1)
  --psql <path|none>     psql to run \\copy with; none uses pg-copy-streams (default: psql on PATH)
  --out <file>           where to write the results (default: bench/RESULTS.md)
  --rollback             only the rollback benchmark (bench/rollback.ts; --rollback --help)
  --tenant-backup        only the tenant backup benchmark (bench/tenant-backup.ts; --tenant-backup --help)

Generated catalogs are kept in bench/data/ and reused by later runs.`;

interface Options {
  sizes: number[];
  repeat: number;
  databaseUrl?: string;
  seed: number;
  dirty: number;
  changed: number;
  psql?: string;
  out: string;
  argv: string[];
}

class UsageError extends Error {}

function parseOptionValues(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string' },
      rows: { type: 'string' },
      large: { type: 'boolean', default: false },
      repeat: { type: 'string', default: '3' },
      'database-url': { type: 'string' },
      seed: { type: 'string', default: '1' },
      dirty: { type: 'string', default: '0.01' },
      changed: { type: 'string', default: '0.1' },
      psql: { type: 'string' },
      out: { type: 'string', default: path.join(HERE, 'RESULTS.md') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

function parseOptions(argv: string[]): Options | undefined {
  let parsed;
  try {
    parsed = parseOptionValues(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values } = parsed;
  if (values.help) return undefined;
  const wholeNumber = (name: string, text: string, min: number) => {
    const n = Number(text.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, not ${text}`);
    return n;
  };
  const fraction = (name: string, text: string) => {
    const n = Number(text);
    if (!(n >= 0 && n <= 1)) throw new UsageError(`--${name} must be a fraction between 0 and 1, not ${text}`);
    return n;
  };
  const sizes =
    values.rows !== undefined
      ? [wholeNumber('rows', values.rows, 1)]
      : (values.sizes ?? '1000000,5000000').split(',').map((s) => wholeNumber('sizes', s.trim(), 1));
  if (values.large && !sizes.includes(10_000_000)) sizes.push(10_000_000);
  let psql: string | undefined;
  if (values.psql !== 'none') {
    psql = findExecutable(values.psql ?? 'psql');
    if (values.psql !== undefined && psql === undefined) throw new UsageError(`--psql ${values.psql}: not executable`);
  }
  return {
    sizes,
    repeat: wholeNumber('repeat', values.repeat, 1),
    databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
    seed: wholeNumber('seed', values.seed, 0),
    dirty: fraction('dirty', values.dirty),
    changed: fraction('changed', values.changed),
    psql,
    out: path.resolve(values.out),
    argv,
  };
}

/** One case of the benchmark: `run` prepares (untimed), runs once and returns the timed sample. */
interface CaseSpec {
  id: string;
  label: string;
  run: (problem: (message: string) => void) => Promise<Sample>;
}

/** Everything a case needs: the server, its tools, a scratch folder. */
interface Bench {
  pool: pg.Pool;
  url: string;
  tmp: string;
  psql?: string;
  pgloader?: string;
  /** pgferry's default --jobs on this machine (the number of cores, at most MAX_JOBS). */
  jobs: number;
  options: Options;
}

async function main(): Promise<void> {
  if (process.argv.includes('--rollback')) {
    if (!(await benchRollback(process.argv.slice(2).filter((a) => a !== '--rollback')))) console.log(ROLLBACK_USAGE);
    return;
  }
  if (process.argv.includes('--tenant-backup')) {
    const args = process.argv.slice(2).filter((a) => a !== '--tenant-backup');
    if (!(await benchTenantBackup(args))) console.log(TENANT_BACKUP_USAGE);
    return;
  }
  const options = parseOptions(process.argv.slice(2));
  if (!options) {
    console.log(USAGE);
    return;
  }
  const { url, embedded, tmp, close } = await openBenchServer('run', options.databaseUrl, log);
  try {
    const origin = embedded ? 'embedded, temporary folder, default settings' : describeServer(url);
    if (!embedded) log(`using the server at ${origin}`);
    const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'pgferry-bench' });
    pool.on('error', () => {});
    try {
      await setUp(pool);
      const pgloader = findExecutable('pgloader');
      if (!options.psql) log('psql not found (or --psql none): the \\copy cases pipe the file through pg-copy-streams');
      if (!pgloader) log('pgloader not installed: skipped (apt-get install pgloader)');
      const jobs = Math.min(os.availableParallelism(), MAX_JOBS);
      const bench: Bench = { pool, url, tmp, psql: options.psql, pgloader, jobs, options };
      const machine = await describeMachine(bench, origin);
      machine.childBaselineRssKb = (
        await runChild({ url, file: '', tenant: TENANT, mapping: '', baseline: true })
      ).maxRssKb;

      const results: SizeResult[] = [];
      for (const rows of options.sizes) {
        results.push(await benchSize(bench, rows));
        await writeOwnedSections(options.out, resultsMarkdown(machine, results), isSizeHeading);
        console.log(`\n${sizeSection(results[results.length - 1])}\n`);
      }
      log(`results written to ${options.out}`);
    } finally {
      await pool.end();
    }
  } finally {
    await close();
  }
}

async function benchSize(bench: Bench, rows: number): Promise<SizeResult> {
  const { options } = bench;
  const catalog = async (key: CatalogKey) => {
    const made = await ensureCatalog(DATA_DIR, key, (file) => log(`generating ${path.relative(ROOT, file)}`));
    if (made.reused) log(`reusing ${path.relative(ROOT, made.file)}`);
    return made;
  };
  const base = await catalog({ rows, seed: options.seed, dirty: 0 });
  const changed =
    options.changed > 0 ? await catalog({ rows, seed: options.seed, dirty: 0, changed: options.changed }) : undefined;
  const dirty = options.dirty > 0 ? await catalog({ rows, seed: options.seed, dirty: options.dirty }) : undefined;

  const copyLabel = bench.psql ? 'psql \\copy' : 'COPY via pg-copy-streams (no psql)';
  const floor: CaseSpec = {
    id: '1',
    label: `floor: ${copyLabel} → UNLOGGED text table`,
    run: async (problem) => {
      const wal = await prepare(bench, `truncate ${FLOOR_TABLE}`);
      const { sample, copied } = await copyFile(bench, FLOOR_TABLE, base.file);
      if (copied !== rows) problem(`copied ${copied} rows, not ${rows}`);
      return { ...sample, walBytes: await walSince(bench.pool, wal) };
    },
  };
  const typed: CaseSpec = {
    id: '2',
    label: `${copyLabel} → typed ${TARGET} (primary key)`,
    run: async (problem) => {
      const wal = await prepare(bench, `truncate ${TARGET}`);
      const { sample, copied } = await copyFile(bench, `${TARGET} (${COLUMN_LIST})`, base.file);
      if (copied !== rows) problem(`copied ${copied} rows, not ${rows}`);
      return { ...sample, walBytes: await walSince(bench.pool, wal) };
    },
  };
  const full = pgferryCase(bench, {
    id: '4',
    label: 'pgferry full load → empty target',
    file: base.file,
    before: `truncate ${TARGET}`,
    check: (counts, written, problem) => {
      if (counts.inserted !== rows) problem(`inserted ${counts.inserted}, not ${rows}`);
      if (written !== undefined && written !== rows) problem(`${written} rows written, not ${rows}`);
    },
  });
  // The target is full after case 4; vacuum analyze makes it the settled table a next day's
  // file meets, whatever autovacuum did or did not get to.
  const reload = pgferryCase(bench, {
    id: '5a',
    label: 'pgferry re-load, same file → full target (all unchanged)',
    file: base.file,
    before: `vacuum analyze ${TARGET}`,
    check: (counts, written, problem) => {
      if (counts.unchanged !== rows) problem(`unchanged ${counts.unchanged}, not ${rows}`);
      if (written) problem(`the re-load of an unchanged file rewrote ${written} rows`);
    },
  });
  const changedCase =
    changed &&
    pgferryCase(bench, {
      id: '5b',
      label: `pgferry load, ${percent(options.changed)} changed rows → full target (--jobs 1)`,
      file: changed.file,
      // One COPY stream: its stage step is case 3's one-stream figure.
      jobs: 1,
      before: `vacuum analyze ${TARGET}`,
      check: (counts, written, problem) => {
        const expected = changed.stats.changedRows;
        if (counts.updated !== expected) problem(`updated ${counts.updated}, not ${expected}`);
        if (written !== undefined && written !== expected) problem(`${written} rows written, not ${expected}`);
      },
    });
  const dirtyCase =
    dirty &&
    pgferryCase(bench, {
      id: '4d',
      label: `pgferry full load, ${percent(options.dirty)} dirty file → empty target`,
      file: dirty.file,
      before: `truncate ${TARGET}`,
      check: (counts, written, problem) => {
        // See bench/README.md: a multi-line record with a wrong column count counts twice.
        if (counts.read !== rows) problem(`pgferry counted ${counts.read} records read, the file has ${rows}`);
        if (written !== undefined && written !== counts.inserted)
          problem(`${written} rows written, not ${counts.inserted}`);
      },
    });
  const pgloaderCase: CaseSpec | undefined = bench.pgloader
    ? {
        id: '6',
        label: `pgloader → typed ${TARGET}`,
        run: async (problem) => {
          const wal = await prepare(bench, `truncate ${TARGET}`);
          const sample = { ...(await runPgloader(bench, base.file)), walBytes: await walSince(bench.pool, wal) };
          const { rows: found } = await bench.pool.query(`select count(*)::integer as n from ${TARGET}`);
          if (found[0].n !== rows) problem(`${found[0].n} rows in the target, not ${rows}`);
          return sample;
        },
      }
    : undefined;

  // Rounds: every group once per round, the groups' order rotating from round to round. A
  // group's cases run in order: 5a and 5b need the target case 4 left.
  const groups: CaseSpec[][] = [[floor], [typed], [full, reload, ...(changedCase ? [changedCase] : [])]];
  if (dirtyCase) groups.push([dirtyCase]);
  if (pgloaderCase) groups.push([pgloaderCase]);
  const results = new Map<string, CaseResult>();
  for (const spec of groups.flat()) results.set(spec.id, { id: spec.id, label: spec.label, samples: [], problems: [] });

  const sizeLabel = `${rows.toLocaleString('en-US')} rows`;
  log(`${sizeLabel}: ${groups.flat().length} cases × ${options.repeat} runs, interleaved`);
  for (let round = 0; round < options.repeat; round++) {
    const shift = round % groups.length;
    for (const group of [...groups.slice(shift), ...groups.slice(0, shift)]) {
      for (const spec of group) {
        const result = results.get(spec.id)!;
        if (result.error) break; // a failed case stops its group: the next ones need its state
        const problem = (message: string) => {
          if (!result.problems.includes(message)) result.problems.push(message);
          log(`  ⚠ (${spec.id}) ${message}`);
        };
        try {
          const sample = await spec.run(problem);
          result.samples.push(sample);
          const rss = sample.maxRssKb ? `, peak RSS ${Math.round(sample.maxRssKb / 1024)} MB` : '';
          // Each run's steps, so that an outlier can be traced to its step.
          const steps = sample.timings
            ? ` (${Object.entries(sample.timings)
                .map(([step, ms]) => `${step} ${(ms / 1000).toFixed(2)}`)
                .join(', ')})`
            : '';
          log(
            `[${sizeLabel}, round ${round + 1}/${options.repeat}] (${spec.id}) ${spec.label}: ` +
              `${sample.seconds.toFixed(2)} s${steps}${rss}`,
          );
        } catch (error) {
          result.error = error instanceof Error ? error.message : String(error);
          log(
            `[${sizeLabel}, round ${round + 1}/${options.repeat}] (${spec.id}) ${spec.label}: FAILED\n${result.error}`,
          );
          break;
        }
      }
    }
  }

  // (3) staging alone, from the stage step of pgferry loads of same-sized clean files: one
  // COPY stream (5b, --jobs 1), and the default parallel streams (4 and 5a).
  const stageSamples = (ids: string[]) =>
    ids
      .flatMap((id) => results.get(id)?.samples ?? [])
      .filter((s) => s.timings?.stage !== undefined)
      .map((s) => ({ seconds: s.timings!.stage / 1000 }));
  const stagingCase = (id: string, label: string, ids: string[]): CaseResult => {
    const samples = stageSamples(ids);
    return { id, label, samples, problems: [], ...(samples.length ? {} : { error: 'no pgferry load succeeded' }) };
  };
  const stagingOne = stagingCase('3', 'pgferry staging alone, one COPY stream (stage step of 5b) → staging table', [
    '5b',
  ]);
  const staging = stagingCase(
    '3j',
    `pgferry staging alone, ${bench.jobs} parallel COPY streams (stage step of 4 and 5a) → staging table`,
    ['4', '5a'],
  );
  const stagingSamples = staging.samples;
  const order = ['1', '2', '3', '3j', '4', '4d', '5a', '5b', '6'];
  const cases = [...results.values(), stagingOne, staging].sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  if (!pgloaderCase) {
    cases.push({
      id: '6',
      label: 'pgloader',
      samples: [],
      problems: [],
      skipped: 'pgloader not installed: skipped (apt-get install pgloader)',
    });
  }

  const notes = [
    `Files: clean \`${path.basename(base.file)}\` for 1–5a and 6` +
      (changed
        ? `, \`${path.basename(changed.file)}\` (${changed.stats.changedRows.toLocaleString('en-US')} rows changed) for 5b`
        : '') +
      (dirty ? `, \`${path.basename(dirty.file)}\` (${describeDirt(dirty.stats)}) for 4d` : '') +
      '.',
    'pgferry times are of `load()` inside its child process (the process start is not counted); psql and pgloader ' +
      'times are of the whole command. Peak RSS is the client process: pgferry from `process.resourceUsage()`, ' +
      'psql and pgloader from `/usr/bin/time`; the server’s memory is not counted.',
    '"rows written": rows of the target whose current version the run wrote (xmin newer than the run’s start). ' +
      '"WAL": what the server wrote to its write-ahead log during the run (pg_current_wal_lsn before and after).',
  ];
  const stageMedian = stagingSamples.length ? median(stagingSamples.map((s) => s.seconds)) : undefined;
  const fullResult = results.get('4')!;
  if (stageMedian !== undefined && fullResult.samples.length) {
    const fullMedian = median(fullResult.samples.map((s) => s.seconds));
    notes.push(`Staging is ${Math.round((stageMedian / fullMedian) * 100)}% of the full load (4).`);
  }
  return { rows, file: path.relative(ROOT, base.file), fileBytes: (await stat(base.file)).size, cases, notes };
}

function describeDirt(stats: CatalogStats): string {
  return Object.entries(stats.dirtyRows)
    .map(([kind, n]) => `${n.toLocaleString('en-US')} ${kind.replace('_', ' ')}`)
    .join(', ');
}

/**
 * Untimed preparation of a case: its SQL, then a checkpoint so that none lands in the timing.
 * Returns the WAL position the case starts from.
 */
async function prepare(bench: Bench, sql: string): Promise<string | undefined> {
  await bench.pool.query(sql);
  // Not allowed to every role on a server of your own: then the runs simply include them.
  await bench.pool.query('checkpoint').catch(() => {});
  const { rows } = await bench.pool
    .query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
    .catch(() => ({ rows: [] as { lsn: string }[] }));
  return rows[0]?.lsn;
}

/** Bytes of WAL the server wrote since `start` (the case's own and anything else running). */
async function walSince(pool: pg.Pool, start: string | undefined): Promise<number | undefined> {
  if (start === undefined) return undefined;
  const { rows } = await pool.query<{ bytes: string }>(
    'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint as bytes',
    [start],
  );
  return Number(rows[0].bytes);
}

/** `\copy TABLE from FILE csv header` through psql, or through pg-copy-streams without psql. */
async function copyFile(bench: Bench, table: string, file: string): Promise<{ sample: Sample; copied: number }> {
  if (bench.psql) {
    const command = `\\copy ${table} from ${quoteLiteral(file)} csv header`;
    const result = await runCommand(bench.psql, [bench.url, '-X', '-w', '-v', 'ON_ERROR_STOP=1', '-c', command]);
    if (result.code !== 0) throw new Error(`psql -c "${command}" failed:\n${tail(result.stderr)}`);
    const copied = Number(/COPY (\d+)/.exec(result.stdout)?.[1] ?? NaN);
    return { sample: { seconds: result.seconds, maxRssKb: result.maxRssKb }, copied };
  }
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  try {
    const started = performance.now();
    const copy = client.query(copyFrom(`copy ${table} from stdin with (format csv, header true)`));
    await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), copy);
    return { sample: { seconds: (performance.now() - started) / 1000 }, copied: copy.rowCount };
  } finally {
    await client.end();
  }
}

type CountsCheck = (
  counts: Record<string, number>,
  written: number | undefined,
  problem: (message: string) => void,
) => void;

/** A pgferry load of `file` in a child process, after the untimed `before` SQL. */
function pgferryCase(
  bench: Bench,
  spec: { id: string; label: string; file: string; before: string; check: CountsCheck; jobs?: number },
): CaseSpec {
  return {
    id: spec.id,
    label: spec.label,
    run: async (problem) => {
      const wal = await prepare(bench, spec.before);
      const since = await currentXid(bench.pool);
      const report = await runChild({
        url: bench.url,
        file: spec.file,
        tenant: TENANT,
        mapping: MAPPING,
        jobs: spec.jobs,
      });
      if (report.status !== 'succeeded') throw new Error(`the load ended ${report.status}: ${report.error ?? ''}`);
      const walBytes = await walSince(bench.pool, wal);
      const written = await rowsWrittenSince(bench.pool, since);
      const counts = report.counts ?? {};
      spec.check(counts, written, problem);
      return {
        seconds: report.seconds,
        maxRssKb: report.maxRssKb,
        rowsWritten: written,
        walBytes,
        timings: report.timings,
        counts,
      };
    },
  };
}

/** The xid of a fresh transaction (mod 2^32, as xmin shows it). */
async function currentXid(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ xid: string }>('select (txid_current() % 4294967296) as xid');
  return Number(rows[0].xid);
}

/** Rows of the target whose current version a transaction after `since` wrote. */
async function rowsWrittenSince(pool: pg.Pool, since: number): Promise<number | undefined> {
  if (since > 2 ** 32 - 100_000_000) return undefined; // too close to wraparound to compare xids
  const { rows } = await pool.query<{ n: string }>(
    `select count(*) as n from ${TARGET} where xmin::text::bigint >= $1`,
    [since],
  );
  return Number(rows[0].n);
}

async function runPgloader(bench: Bench, file: string): Promise<Sample> {
  const commandFile = path.join(bench.tmp, 'catalog.load');
  const target = bench.url.replace(/^postgres:\/\//, 'postgresql://');
  await writeFile(
    commandFile,
    `LOAD CSV
  FROM ${quoteLiteral(file)}
    HAVING FIELDS (${COLUMN_LIST})
  INTO ${target}
    TARGET TABLE ${TARGET}
    TARGET COLUMNS (${COLUMN_LIST})
  WITH skip header = 1,
       fields optionally enclosed by '"',
       fields escaped by double-quote,
       fields terminated by ',';
`,
  );
  const result = await runCommand(bench.pgloader!, ['--root-dir', path.join(bench.tmp, 'pgloader'), commandFile]);
  if (result.code !== 0) throw new Error(`pgloader failed:\n${tail(result.stderr || result.stdout, 10)}`);
  return { seconds: result.seconds, maxRssKb: result.maxRssKb };
}

async function describeMachine(bench: Bench, origin: string): Promise<Machine> {
  const { rows } = await bench.pool.query<Record<string, string>>(
    `select current_setting('server_version') as version,
            current_setting('shared_buffers') as shared_buffers,
            current_setting('fsync') as fsync,
            current_setting('synchronous_commit') as synchronous_commit,
            current_setting('max_wal_size') as max_wal_size,
            current_setting('work_mem') as work_mem`,
  );
  const s = rows[0];
  const version = async (command: string | undefined, fallback: string) => {
    if (!command) return fallback;
    const result = await runCommand(command, ['--version'], { measureMemory: false }).catch(() => undefined);
    return result?.stdout.trim().split('\n')[0] || fallback;
  };
  const git = (args: string[]) => {
    try {
      // Not trimmed: porcelain lines begin with a status column that may be a space.
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  const commit = git(['rev-parse', '--short', 'HEAD']).trim();
  const changed = git(['status', '--porcelain', '--', 'src', 'sql'])
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(3));
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `npx tsx bench/run.ts ${bench.options.argv.join(' ')}`.trim(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    server: `PostgreSQL ${s.version} (${origin})`,
    serverSettings:
      `shared_buffers ${s.shared_buffers}, fsync ${s.fsync}, synchronous_commit ${s.synchronous_commit}, ` +
      `max_wal_size ${s.max_wal_size}, work_mem ${s.work_mem}`,
    psql: await version(bench.psql, 'not found: COPY through pg-copy-streams instead'),
    pgloader: await version(bench.pgloader, 'not installed: skipped (apt-get install pgloader)'),
    node: process.version,
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', '),
    pgferry: commit ? `${commit}${changed.length ? ` + uncommitted changes to ${changed.join(', ')}` : ''}` : 'unknown',
  };
}

/** host:port/database of a connection string, without its password. */
function describeServer(url: string): string {
  try {
    const where = new URL(url);
    return `${where.hostname || 'localhost'}:${where.port || 5432}${where.pathname}`;
  } catch {
    return 'the given server';
  }
}

function percent(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(3))}%`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function log(message: string): void {
  console.log(message);
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const cause = error instanceof Error && error.cause instanceof Error ? `\n  cause: ${error.cause.message}` : '';
  console.error(`bench: ${error instanceof Error ? error.message : String(error)}${cause}`);
  process.exitCode = 1;
});
