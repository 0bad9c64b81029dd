// pgferry behind PgBouncer, as many managed servers have it: through session mode everything
// works (the CLI's main flow, the worker); through transaction or statement mode, which
// hand a connection's server session to other clients between transactions, every command
// refuses at start with one line, before it writes anything. Debian's `pgbouncer`, started
// here in front of the test's server; without it the file is skipped, saying why.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { type Database, openDatabase } from '../src/db/database.js';
import { detectPoolerMode } from '../src/db/pooler-mode.js';
import { startWorker } from '../src/jobs/worker.js';
import { load } from '../src/load/load.js';
import { PRODUCTS_DDL, productsMapping, tempDir, writeFile } from './helpers/fixtures.js';
import { findPgbouncer, type PoolMode, type RunningPgbouncer, startPgbouncer } from './helpers/pgbouncer.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

const binary = findPgbouncer();
if (!binary) console.warn('pgbouncer.test.ts: skipped, no `pgbouncer` installed (Debian: apt-get install pgbouncer)');

describe.skipIf(!binary)('through PgBouncer', () => {
  let db: TestDatabase;
  let bouncer: RunningPgbouncer;
  let dir: string;
  const opened: Database[] = [];
  const through = (mode: PoolMode) => bouncer.url(db.name, mode);
  const loadCount = async () => Number((await db.pool.query('select count(*) from ferry.loads')).rows[0].count);

  beforeAll(async () => {
    db = await createTestDatabase();
    bouncer = await startPgbouncer({
      binary: binary!,
      serverUrl: db.url,
      databases: [db.name],
      users: [db.url, inject('adminUrl')],
    });
    dir = tempDir();
    productsMapping(dir);
    await db.pool.query('create schema app');
    await db.pool.query(PRODUCTS_DDL);
  });

  afterAll(async () => {
    for (const d of opened) await d.close();
    // Its server connections go before the test's database is dropped.
    await bouncer?.stop();
  });

  describe('detectPoolerMode', () => {
    it.each([
      ['session', 'session'],
      ['transaction', 'transaction'],
      ['statement', 'statement'],
    ] as const)('tells PgBouncer in %s mode', async (mode, expected) => {
      const d = await openDatabase({ url: through(mode), migrate: false, requireSession: false });
      opened.push(d);
      const report = await detectPoolerMode(d.pool);
      expect(report.mode, `${report.explanation}\n${bouncer.log()}`).toBe(expected);
      expect(report.server).toMatch(/^127\.0\.0\.1:\d+$/);
    });

    it('tells a direct connection from a pooled one, on a pool of one connection too', async () => {
      expect((await detectPoolerMode(db.pool)).mode).toBe('session');
      const single = new pg.Pool({ connectionString: db.url, max: 1 });
      try {
        expect((await detectPoolerMode(single)).mode).toBe('session');
      } finally {
        await single.end();
      }
    });
  });

  describe('in session mode', () => {
    const cli = (...args: string[]) => runCli(args, { env: { DATABASE_URL: through('session') } });

    it('runs the main flow through the CLI: migrate, tenant add, protect, load, status, rollback', async () => {
      const migrate = await cli('migrate');
      expect(migrate.code, migrate.stderr).toBe(0);
      expect(migrate.stdout).toMatch(/the ferry schema is up to date/);

      for (const tenant of ['acme', 'queued']) {
        const added = await cli('tenant', 'add', tenant);
        expect(added.code, added.stderr).toBe(0);
      }
      const protect = await cli('tenant', 'protect', 'app.products');
      expect(protect.code, protect.stderr).toBe(0);

      const file = writeFile(dir, 'acme.csv', 'sku,name,price\nA-1,Anvil,10.50\nA-2,Rope,oops\nA-3,Hammer,7\n');
      const loaded = await cli('load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--json');
      expect(loaded.code, loaded.stderr).toBe(0);
      const result = JSON.parse(loaded.stdout);
      expect(result).toMatchObject({ status: 'succeeded' });
      expect(result.counts).toMatchObject({ read: 3, staged: 3, rejected: 1, inserted: 2 });

      const status = await cli('status', String(result.loadId));
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/staged 3 = promoted 2 \+ duplicates 0 \+ rejected 1/);

      const rolledBack = await cli('rollback', String(result.loadId));
      expect(rolledBack.code, rolledBack.stderr).toBe(0);
      const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'acme'`);
      expect(rows[0].n).toBe(0);
    });

    it('doctor finds nothing wrong with the pooler', async () => {
      const run = await cli('doctor', '--json');
      const findings = JSON.parse(run.stdout) as { check: string; status: string }[];
      expect(findings.find((f) => f.check === 'pooler')).toMatchObject({ status: 'ok' });
    });

    it('runs a queued load in the worker (advisory locks and LISTEN on its sessions)', async () => {
      const d = await openDatabase({ url: through('session') });
      opened.push(d);
      const worker = await startWorker(d.pool, { pollInterval: 200, log: () => {} });
      try {
        const file = writeFile(dir, 'queued.csv', 'sku,name,price\nQ-1,Quill,3\nQ-2,Quire,4\n');
        const queued = await load(d.pool, {
          file,
          tenant: 'queued',
          mapping: 'products',
          mappingsDir: dir,
          queue: true,
        });
        expect(queued.status).toBe('queued');
        const statusOf = async () =>
          (await db.pool.query('select ferry.load_status(l) as s from ferry.loads l where id = $1', [queued.loadId]))
            .rows[0].s;
        await until(async () => ['succeeded', 'failed', 'cancelled'].includes(await statusOf()), 60_000);
        expect(await statusOf()).toBe('succeeded');
      } finally {
        await worker.stop();
      }
      const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'queued'`);
      expect(rows[0].n).toBe(2);
    });
  });

  describe.each(['transaction', 'statement'] as const)('in %s mode', (mode) => {
    const cli = (...args: string[]) => runCli(args, { env: { DATABASE_URL: through(mode) } });
    const refusal = new RegExp(
      `^pgferry: the connection at 127\\.0\\.0\\.1:\\d+ goes through a pooler in ${mode} mode \\([^()\\n]+\\), and pgferry needs a session of its own: use the pooler's session-mode port or connect to PostgreSQL directly\\n$`,
    );

    it('migrate refuses at start, in one line', async () => {
      const run = await cli('migrate');
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(refusal);
      expect(run.stdout).toBe('');
    });

    it('load refuses at start, in one line, and registers no load', async () => {
      const before = await loadCount();
      const file = writeFile(dir, `${mode}.csv`, 'sku,name,price\nT-1,Tack,1\n');
      const run = await cli('load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(refusal);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(await loadCount()).toBe(before);
    });

    it('doctor reports the pooler mode, with the fix, instead of refusing', async () => {
      const run = await cli('doctor');
      expect(run.code).toBe(1);
      expect(run.stderr).toBe('');
      expect(run.stdout).toMatch(
        new RegExp(`^FAIL {2}pooler +127\\.0\\.0\\.1:\\d+ goes through a pooler in ${mode} mode`, 'm'),
      );
      expect(run.stdout).toMatch(/^ +fix: connect to the pooler's session-mode port, or to PostgreSQL directly/m);
    });
  });
});
