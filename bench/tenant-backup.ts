// pgferry's tenant backup benchmark (issue 27): a tenant of N products (and their suppliers,
// joined by a foreign key) beside another tenant's rows; its backup and its restore into a
// second database, each by the shipped CLI in a process of its own (time and peak RSS), against psql's
// \copy of the same rows out (gzip) and in, and pg_dump of the tables where its version can
// read the server. Each restore is checked: the rows in the second database are those of the
// first. Writes (replaces) the section "Tenant backup and restore (issue 27)" of bench/RESULTS.md.
//
// usage: npm run bench -- --tenant-backup [--rows 1000000] [--other 100000] [--runs 2]
//                                         [--database-url URL] [--out bench/RESULTS.md]
import { execFileSync } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import pg from 'pg';

import { addTenant, listTenants, migrate, protectTable, purgeTenant } from '../src/index.js';
import { createDatabase, openBenchServer, ROOT } from './bench-setup.js';
import { findExecutable, runCommand, tail } from './commands.js';
import { median } from './report.js';
import { writeSections } from './results-file.js';

const HEADING = '## Tenant backup and restore (issue 27)';
const TENANT = 'big';
const OTHER = 'other';
const SUPPLIERS = 1000;

export const TENANT_BACKUP_USAGE = `usage: npm run bench -- --tenant-backup [options]

  --rows <n>             the tenant's products (default: 1000000), beside ${SUPPLIERS} suppliers
  --other <n>            another tenant's products in the same tables (default: 100000)
  --runs <n>             runs of each case (default: 2)
  --database-url <url>   server to use, as its superuser (default: $DATABASE_URL, else an
                         embedded PostgreSQL 18 in a temporary folder, removed at the end)
  --out <file>           where to write the results (default: bench/RESULTS.md)`;

interface Sample {
  seconds: number;
  maxRssKb?: number;
  bytes?: number;
}

/** Runs the benchmark with the arguments after --tenant-backup; false: --help was asked. */
export async function benchTenantBackup(argv: string[]): Promise<boolean> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '1000000' },
      other: { type: 'string', default: '100000' },
      runs: { type: 'string', default: '2' },
      'database-url': { type: 'string' },
      out: { type: 'string', default: path.join(ROOT, 'bench', 'RESULTS.md') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return false;
  const rows = Number(values.rows.replaceAll('_', ''));
  const other = Number(values.other.replaceAll('_', ''));
  const runs = Number(values.runs);
  const server = await openBenchServer('tenant-backup', values['database-url'] ?? process.env.DATABASE_URL, log);
  try {
    const source = server.embedded ? server.url : await createDatabase(server.url, 'pgferry_bench_tenant');
    const target = await createDatabase(source, 'pgferry_bench_tenant_restore');
    const sourcePool = new pg.Pool({ connectionString: source, max: 2 });
    const targetPool = new pg.Pool({ connectionString: target, max: 2 });
    // The server's shutdown at the end ends idle connections: not a failure of the run.
    sourcePool.on('error', () => {});
    targetPool.on('error', () => {});
    try {
      log(
        `setting up ${rows.toLocaleString('en-US')} rows of ${TENANT} and ${other.toLocaleString('en-US')} of ${OTHER}`,
      );
      await setUp(sourcePool, { [TENANT]: rows, [OTHER]: other });
      await setUp(targetPool, {});
      const version = (await sourcePool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]
        .v;
      const psql = findExecutable('psql');
      const pgDump = findExecutable('pg_dump');
      const file = path.join(server.tmp, 'big.pgferry');
      const copyFile = path.join(server.tmp, 'big');
      const samples: Record<string, Sample[]> = {};
      const notes = new Set<string>([
        `Load average at the start: ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(', ')}.`,
      ]);
      const add = (name: string, sample: Sample) => (samples[name] ??= []).push(sample);
      log('building dist/ (the CLI runs from it)');
      execFileSync(
        process.execPath,
        [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
        {
          cwd: ROOT,
          stdio: 'inherit',
        },
      );
      const baseline = await cli(source, ['tenant', 'list']);

      for (let i = 0; i < runs; i++) {
        await rm(file, { force: true });
        const backup = await cli(source, ['tenant', 'backup', TENANT, '-o', file]);
        add('pgferry tenant backup', { ...backup, bytes: (await stat(file)).size });
        await clearTarget(targetPool);
        const restore = await cli(target, ['tenant', 'restore', file]);
        add('pgferry tenant restore (into an empty second database)', restore);
        await checkSame(sourcePool, targetPool);
        log(`run ${i + 1}: backup ${backup.seconds.toFixed(2)} s, restore ${restore.seconds.toFixed(2)} s`);
        if (psql) {
          const out = await runCommand(psql, [
            '-X',
            '-q',
            '-v',
            'ON_ERROR_STOP=1',
            '-d',
            source,
            '-c',
            `\\copy (select * from bench_tenant.suppliers where tenant_id = '${TENANT}') to program 'gzip -3 > ${copyFile}-s.gz'`,
            '-c',
            `\\copy (select * from bench_tenant.products where tenant_id = '${TENANT}') to program 'gzip -3 > ${copyFile}-p.gz'`,
          ]);
          if (out.code !== 0) throw new Error(`psql \\copy out failed: ${tail(out.stderr)}`);
          const bytes = (await stat(`${copyFile}-s.gz`)).size + (await stat(`${copyFile}-p.gz`)).size;
          add("psql \\copy (select … where tenant_id = 'big') to program 'gzip -3', both tables", { ...out, bytes });
          await clearTarget(targetPool);
          const into = await runCommand(psql, [
            '-X',
            '-q',
            '-v',
            'ON_ERROR_STOP=1',
            '-d',
            target,
            '-1',
            '-c',
            `\\copy bench_tenant.suppliers from program 'gzip -dc ${copyFile}-s.gz'`,
            '-c',
            `\\copy bench_tenant.products from program 'gzip -dc ${copyFile}-p.gz'`,
          ]);
          if (into.code !== 0) throw new Error(`psql \\copy in failed: ${tail(into.stderr)}`);
          add("psql -1 \\copy … from program 'gzip -dc', both tables (as the owner, no RLS)", into);
          await checkSame(sourcePool, targetPool);
        }
        if (pgDump) {
          const dump = await runCommand(pgDump, [
            '-d',
            source,
            '--data-only',
            '-Fc',
            '-Z',
            '3',
            '-t',
            'bench_tenant.suppliers',
            '-t',
            'bench_tenant.products',
            '-f',
            `${copyFile}.dump`,
          ]);
          if (dump.code === 0) {
            add('pg_dump --data-only -Fc of both tables (every tenant: it cannot filter rows)', {
              ...dump,
              bytes: (await stat(`${copyFile}.dump`)).size,
            });
          } else {
            notes.add(`pg_dump left out: ${tail(dump.stderr, 1).replace(/^pg_dump: (detail: )?/, '')}.`);
          }
        }
      }
      if (!pgDump) notes.add('pg_dump left out: not installed.');
      const section = resultsSection({
        rows,
        other,
        runs,
        version,
        embedded: server.embedded,
        baseline,
        samples,
        notes,
      });
      await writeSections(path.resolve(values.out), section);
      console.log(`\n${section}`);
    } finally {
      await sourcePool.end();
      await targetPool.end();
    }
  } finally {
    await server.close();
  }
  return true;
}

/** The two tables, protected, and each tenant's rows (suppliers, then products referencing them). */
async function setUp(pool: pg.Pool, tenants: Record<string, number>): Promise<void> {
  const client = await pool.connect();
  try {
    await migrate(client);
    await client.query(`create schema if not exists bench_tenant;
      drop table if exists bench_tenant.products, bench_tenant.suppliers;
      create table bench_tenant.suppliers (
        tenant_id text not null, id integer not null, name text not null, primary key (tenant_id, id));
      create table bench_tenant.products (
        tenant_id text not null, sku text not null, supplier_id integer not null, name text not null,
        price numeric(10,2) not null, stock integer not null, updated_at timestamptz,
        primary key (tenant_id, sku),
        foreign key (tenant_id, supplier_id) references bench_tenant.suppliers (tenant_id, id))`);
  } finally {
    client.release();
  }
  const existing = (await listTenants(pool)).map((t) => t.slug);
  for (const slug of [TENANT, OTHER]) if (!existing.includes(slug)) await addTenant(pool, slug);
  await protectTable(pool, 'bench_tenant.suppliers');
  await protectTable(pool, 'bench_tenant.products');
  for (const [slug, n] of Object.entries(tenants)) {
    await pool.query(
      `insert into bench_tenant.suppliers select $1, i, 'Supplier "' || i || '", Inc.' from generate_series(1, $2) i`,
      [slug, SUPPLIERS],
    );
    await pool.query(
      `insert into bench_tenant.products
       select $1, 'SKU-' || lpad(i::text, 9, '0'), i % $3 + 1, 'Product ' || i || E', with a comma\\tand a tab',
              (i % 10000) / 100.0, i % 500, timestamptz '2026-01-01' + i * interval '1 second'
       from generate_series(1, $2) i`,
      [slug, n, SUPPLIERS],
    );
  }
  await pool.query('analyze bench_tenant.suppliers, bench_tenant.products');
}

/** The second database without the tenant: purged (untimed), then added again by the restore. */
async function clearTarget(pool: pg.Pool): Promise<void> {
  if ((await listTenants(pool)).some((t) => t.slug === TENANT)) await purgeTenant(pool, TENANT);
  await pool.query(`delete from bench_tenant.products where tenant_id = $1`, [TENANT]);
  await pool.query(`delete from bench_tenant.suppliers where tenant_id = $1`, [TENANT]);
}

async function checkSame(source: pg.Pool, target: pg.Pool): Promise<void> {
  const digest = async (pool: pg.Pool) =>
    (
      await pool.query<{ d: string }>(
        `select count(*) || ' ' || md5(string_agg(p::text, '|' order by p.sku)) as d
         from bench_tenant.products p where tenant_id = $1`,
        [TENANT],
      )
    ).rows[0].d;
  const [a, b] = [await digest(source), await digest(target)];
  if (a !== b) throw new Error(`the restored rows differ from the source's: ${a} vs ${b}`);
}

/**
 * The shipped CLI (bin/pgferry.js → dist/, built at the start), as a user runs it: its wall
 * time and peak RSS (GNU time), startup included.
 */
async function cli(url: string, args: string[]): Promise<Sample> {
  const result = await runCommand(process.execPath, [path.join(ROOT, 'bin', 'pgferry.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: url },
  });
  if (result.code !== 0)
    throw new Error(`pgferry ${args.join(' ')} failed (exit ${result.code}):\n${tail(result.stderr, 10)}`);
  return { seconds: result.seconds, maxRssKb: result.maxRssKb };
}

function resultsSection(r: {
  rows: number;
  other: number;
  runs: number;
  version: string;
  embedded: boolean;
  baseline: Sample;
  samples: Record<string, Sample[]>;
  notes: Set<string>;
}): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const total = r.rows + SUPPLIERS;
  const lines = [
    HEADING,
    '',
    `\`npm run bench -- --tenant-backup --rows ${r.rows} --other ${r.other} --runs ${r.runs}\` on ` +
      `${new Date().toISOString().slice(0, 10)}: PostgreSQL ${r.version}${r.embedded ? ' (embedded, default settings)' : ''}, ` +
      `${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}.`,
    '',
    `A tenant of ${n(r.rows)} products and ${n(SUPPLIERS)} suppliers (a foreign key between them), beside ` +
      `${n(r.other)} products of another tenant; its backup (gzip, not encrypted) and its restore into an empty ` +
      'second database, each by the shipped CLI (`pgferry tenant backup`, `pgferry tenant restore`), every restore ' +
      'checked row for row against the source. Peak RSS is the whole process, startup included: ' +
      `\`pgferry tenant list\` alone peaks at ${Math.round((r.baseline.maxRssKb ?? 0) / 1024)} MB. ` +
      "The psql cases read and write the same rows without row-level security, as the tables' owner.",
    '',
    '| case | median s | rows/s | peak RSS | file | runs (s) |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const [name, samples] of Object.entries(r.samples)) {
    const seconds = median(samples.map((s) => s.seconds));
    const rss = samples.map((s) => s.maxRssKb).filter((k): k is number => k !== undefined);
    const bytes = samples.find((s) => s.bytes !== undefined)?.bytes;
    lines.push(
      `| ${name} | ${seconds.toFixed(2)} | ${name.startsWith('pg_dump') ? '—' : n(Math.round(total / seconds))} | ` +
        `${rss.length ? `${Math.round(Math.max(...rss) / 1024)} MB` : '—'} | ` +
        `${bytes === undefined ? '—' : `${(bytes / 1024 / 1024).toFixed(1)} MB`} | ${samples.map((s) => s.seconds.toFixed(2)).join(', ')} |`,
    );
  }
  lines.push('', [...r.notes].join(' '), '');
  return lines.join('\n');
}

function log(message: string): void {
  console.log(message);
}
