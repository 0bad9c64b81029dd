// pgferry's rollback benchmark (issue 23): a load of U updates and I inserts into a fresh
// tenant, beside another tenant's analysed rows, then its rollback. Fresh: the target's
// statistics have never seen the tenant (autovacuum is off on the target, so it cannot analyse
// it in between), the case where a rollback that trusts them went quadratic. Reported: the
// load's time (in a child process, as bench/run.ts measures loads), the rollback's (the
// library's rollback(), in this process), and their ratio; the target is ≤ 2×. Each run is
// checked: the tenant's rows after the rollback are exactly those before the load. Writes
// (replaces) the section "Rollback (issue 23)" of bench/RESULTS.md.
//
// usage: npm run bench -- --rollback [--updates 50000] [--inserts 250000] [--other 200000]
//                                    [--runs 3] [--database-url URL] [--out bench/RESULTS.md]
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import pg from 'pg';

import { addTenant, listTenants, migrate, protectTable, rollback } from '../src/index.js';
import { createDatabase, openBenchServer, ROOT, runChild } from './bench-setup.js';
import { median } from './report.js';
import { writeSections } from './results-file.js';

const TARGET = 'bench_rollback.products';
const OTHER_TENANT = 'bench_rollback_other';
const FRESH_TENANT = 'bench_rollback_fresh';
const HEADING = '## Rollback (issue 23)';

export const ROLLBACK_USAGE = `usage: npm run bench -- --rollback [options]

  --updates <n>          rows the load updates (default: 50000)
  --inserts <n>          rows the load inserts (default: 250000)
  --other <n>            another tenant's rows in the target, analysed (default: 200000)
  --runs <n>             runs, each a fresh tenant's load and its rollback (default: 3)
  --database-url <url>   server to use, as its superuser (default: $DATABASE_URL, else an
                         embedded PostgreSQL 18 in a temporary folder, removed at the end)
  --out <file>           where to write the results (default: bench/RESULTS.md)`;

interface Options {
  updates: number;
  inserts: number;
  other: number;
  runs: number;
  databaseUrl?: string;
  out: string;
}

interface Run {
  loadSeconds: number;
  rollbackSeconds: number;
}

/** Runs the rollback benchmark with the arguments after --rollback; false: --help was asked. */
export async function benchRollback(argv: string[]): Promise<boolean> {
  const { values } = parseArgs({
    args: argv,
    options: {
      updates: { type: 'string', default: '50000' },
      inserts: { type: 'string', default: '250000' },
      other: { type: 'string', default: '200000' },
      runs: { type: 'string', default: '3' },
      'database-url': { type: 'string' },
      out: { type: 'string', default: path.join(ROOT, 'bench', 'RESULTS.md') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return false;
  const whole = (name: string, text: string, min: number) => {
    const n = Number(text.replaceAll('_', ''));
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number ≥ ${min}, not ${text}`);
    return n;
  };
  const options: Options = {
    updates: whole('updates', values.updates, 0),
    inserts: whole('inserts', values.inserts, 0),
    other: whole('other', values.other, 0),
    runs: whole('runs', values.runs, 1),
    databaseUrl: values['database-url'] ?? process.env.DATABASE_URL,
    out: path.resolve(values.out),
  };

  const server = await openBenchServer('rollback', options.databaseUrl, log);
  try {
    const url = server.embedded ? server.url : await createDatabase(server.url, 'pgferry_bench_rollback');
    const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'pgferry-bench-rollback' });
    pool.on('error', () => {});
    try {
      await setUpTarget(pool, options.other);
      const mapping = path.join(server.tmp, 'rollback.sql');
      await writeFile(
        mapping,
        `-- target: ${TARGET}\n-- key: sku\nselect s.sku as sku, s.name as name, s.price as price\nfrom staged s\n`,
      );
      const first = path.join(server.tmp, 'first.csv');
      const second = path.join(server.tmp, 'second.csv');
      await writeCsv(first, options.updates, 'first', 1);
      await writeCsv(second, options.updates + options.inserts, 'second', 2);
      const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;

      const runs: Run[] = [];
      for (let i = 0; i < options.runs; i++) {
        runs.push(await oneRun(pool, url, { mapping, first, second }, options));
        const last = runs[runs.length - 1];
        log(
          `run ${i + 1}: load ${last.loadSeconds.toFixed(2)} s, rollback ${last.rollbackSeconds.toFixed(2)} s ` +
            `(${(last.rollbackSeconds / last.loadSeconds).toFixed(2)}×)`,
        );
      }
      const section = resultsSection(options, runs, version, server.embedded);
      await writeSections(options.out, section);
      console.log(`\n${section}`);
      log(`results written to ${options.out}`);
    } finally {
      await pool.end();
    }
  } finally {
    await server.close();
  }
  return true;
}

/** The target, its two tenants, the other tenant's rows, analysed; autovacuum off on it. */
async function setUpTarget(pool: pg.Pool, otherRows: number): Promise<void> {
  const client = await pool.connect();
  try {
    await migrate(client);
    await client.query(`create schema if not exists bench_rollback;
      drop table if exists ${TARGET};
      create table ${TARGET} (
        tenant_id text not null, sku text not null, name text not null, price numeric(10,2) not null,
        primary key (tenant_id, sku)
      ) with (autovacuum_enabled = off)`);
  } finally {
    client.release();
  }
  const tenants = (await listTenants(pool)).map((t) => t.slug);
  for (const slug of [OTHER_TENANT, FRESH_TENANT]) if (!tenants.includes(slug)) await addTenant(pool, slug);
  await protectTable(pool, TARGET);
  await pool.query(
    `insert into ${TARGET} select $1, 'S' || lpad(i::text, 9, '0'), 'other ' || i, i % 1000
     from generate_series(1, $2) i`,
    [OTHER_TENANT, otherRows],
  );
  await pool.query(`analyze ${TARGET}`);
}

/** skus S000000000.., the same as the other tenant's, named `name n` and priced `price`. */
async function writeCsv(file: string, rows: number, name: string, price: number): Promise<void> {
  const lines = ['sku,name,price'];
  for (let i = 1; i <= rows; i++) lines.push(`S${String(i).padStart(9, '0')},${name} ${i},${price}`);
  await writeFile(file, `${lines.join('\n')}\n`);
}

/**
 * One run: the fresh tenant's rows removed, the rows the measured load will update loaded
 * first (untimed), then the measured load and its rollback, checked.
 */
async function oneRun(
  pool: pg.Pool,
  url: string,
  files: { mapping: string; first: string; second: string },
  options: Options,
): Promise<Run> {
  await pool.query(`delete from ${TARGET} where tenant_id = $1`, [FRESH_TENANT]);
  const child = (file: string) => runChild({ url, file, tenant: FRESH_TENANT, mapping: files.mapping });
  const first = await child(files.first);
  if (first.status !== 'succeeded') throw new Error(`the first load ${first.status}: ${first.error ?? ''}`);
  const before = await digest(pool);

  const load = await child(files.second);
  if (load.status !== 'succeeded') throw new Error(`the load ${load.status}: ${load.error ?? ''}`);
  if (load.counts?.updated !== options.updates || load.counts?.inserted !== options.inserts) {
    throw new Error(
      `the load wrote ${JSON.stringify(load.counts)}, not ${options.updates} updates and ${options.inserts} inserts`,
    );
  }
  const { rows } = await pool.query<{ id: string }>(
    `select max(l.id) as id from ferry.loads l join ferry.tenants t on t.id = l.tenant_id where t.slug = $1`,
    [FRESH_TENANT],
  );
  const started = performance.now();
  const result = await rollback(pool, Number(rows[0].id));
  const rollbackSeconds = (performance.now() - started) / 1000;
  if (result.outcome !== 'rolled_back' || result.deleted !== options.inserts || result.restored !== options.updates) {
    throw new Error(`the rollback: ${JSON.stringify(result)}`);
  }
  const after = await digest(pool);
  if (after !== before) throw new Error('after the rollback, the tenant’s rows are not those before the load');
  return { loadSeconds: load.seconds, rollbackSeconds };
}

async function digest(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ d: string }>(
    `select count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' order by t.sku), '')) as d
     from ${TARGET} t where tenant_id = $1`,
    [FRESH_TENANT],
  );
  return rows[0].d;
}

function resultsSection(options: Options, runs: Run[], version: string, embedded: boolean): string {
  const load = median(runs.map((r) => r.loadSeconds));
  const back = median(runs.map((r) => r.rollbackSeconds));
  const n = (x: number) => x.toLocaleString('en-US');
  const lines = [
    HEADING,
    '',
    `\`npm run bench -- --rollback --updates ${options.updates} --inserts ${options.inserts} --other ${options.other} --runs ${options.runs}\`` +
      ` on ${new Date().toISOString().slice(0, 10)}: PostgreSQL ${version}` +
      `${embedded ? ' (embedded, default settings)' : ''}, ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}.`,
    '',
    `A load of ${n(options.updates)} updates and ${n(options.inserts)} inserts into a fresh tenant, beside ${n(options.other)}` +
      ' analysed rows of another tenant (autovacuum off on the target: its statistics never see the fresh tenant),' +
      ' then its rollback. Every run checked: after the rollback the tenant’s rows are exactly those before the load.',
    '',
    '| run | load s | rollback s | rollback ÷ load |',
    '| --- | ---: | ---: | ---: |',
    ...runs.map(
      (r, i) =>
        `| ${i + 1} | ${r.loadSeconds.toFixed(2)} | ${r.rollbackSeconds.toFixed(2)} | ${(r.rollbackSeconds / r.loadSeconds).toFixed(2)}× |`,
    ),
    `| median | ${load.toFixed(2)} | ${back.toFixed(2)} | ${(back / load).toFixed(2)}× |`,
    '',
  ];
  return lines.join('\n');
}

function log(message: string): void {
  console.log(message);
}
