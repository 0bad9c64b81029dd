// Plans (pgferry plan run / status): loads and syncs in dependency order through an in-process
// worker, on the real test server — a diamond of dependencies, a failure skipping its
// dependents, a dry run, a sync step from a source database, the plan file's validation,
// and the CLI.
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { type RunningWorker, startWorker } from '../src/jobs/worker.js';
import { readPlan } from '../src/plans/plan-file.js';
import { followPlan, type PlanRunState, planStatus, startPlan, workerIsRunning } from '../src/plans/plan-run.js';
import { verifyBackup } from '../src/tenant-backup/verify-backup.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
const source: TestDatabase = await createTestDatabase();
let dir: string;
let worker: RunningWorker;
const workerLines: string[] = [];

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'failing', 'dry', 'synced', 'cli']);
  const mappings = path.join(dir, 'mappings');
  mkdirSync(mappings);
  productsMapping(mappings);
  // A mapping whose target table does not exist: its load fails as it starts.
  productsMapping(mappings, { target: 'app.nowhere' }, 'nowhere');
  const csv = (name: string, prefix: string, rows: number) =>
    writeFile(
      dir,
      name,
      `sku,name,price\n${Array.from({ length: rows }, (_, i) => `${prefix}${i},Item ${i},${i + 1}`).join('\n')}\n`,
    );
  csv('customers.csv', 'C', 3);
  csv('suppliers.csv', 'S', 4);
  csv('products.csv', 'P', 5);
  csv('inventory.csv', 'I', 6);
  csv('other.csv', 'O', 2);
  writeFile(dir, 'bad.csv', 'sku,name,price\nB1,Good,1\nB2,Bad,not a price\n');

  await source.pool.query(`
    create table items (sku text primary key, name text, price numeric, updated_at timestamptz not null);
    insert into items values ('X1', 'Xylophone', 7, '2026-01-01 10:00:00+00'), ('X2', 'Xenon', 8, '2026-01-02 10:00:00+00')`);
  process.env.PGFERRY_TEST_PLAN_SOURCE = source.url;
  writeFile(
    dir,
    'pgferry.yaml',
    `syncs:
  legacy:
    from: env:PGFERRY_TEST_PLAN_SOURCE
    table: items
    cursor: updated_at
    tenant: synced
    mapping: products
`,
  );

  worker = await startWorker(db.pool, {
    concurrency: 4,
    pollInterval: 200,
    log: (line) => workerLines.push(line),
  });
});

afterAll(async () => {
  await worker?.stop();
});

/** Writes a plan file into the fixtures' folder. */
const planFile = (name: string, text: string) => writeFile(dir, name, text);

/** Runs a plan through the worker and waits for its run to end. */
async function runPlan(name: string, text: string, options: { dryRun?: boolean } = {}): Promise<PlanRunState> {
  const plan = await readPlan(planFile(name, text));
  const { runId } = await startPlan(db.pool, plan, options);
  const run = followPlan(db.pool, runId, () => {}, { intervalMs: 100 });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`plan run ${runId} did not end: ${workerLines.join('\n')}`)), 50_000),
  );
  return Promise.race([run, timeout]);
}

const countOf = async (tenant: string) =>
  Number((await db.pool.query('select count(*) from app.products where tenant_id = $1', [tenant])).rows[0].count);

const stepOf = (run: PlanRunState, name: string) => run.steps.find((s) => s.name === name)!;

describe('pgferry plan run', () => {
  it('runs a diamond in dependency order, independent steps side by side', async () => {
    const run = await runPlan(
      'diamond.yaml',
      `# customers → (suppliers, products) → inventory; other on its own
steps:
  inventory:
    load: inventory.csv
    tenant: acme
    mapping: products
    after: [suppliers, products]
  customers:
    load: customers.csv
    tenant: acme
    mapping: products
  suppliers: { load: suppliers.csv, tenant: acme, mapping: products, after: [customers] }
  products: { load: products.csv, tenant: acme, mapping: products, after: customers }
  other: { load: other.csv, tenant: acme, mapping: products, max_rejects: 0 }
`,
    );
    expect(run.status, JSON.stringify(run.steps, null, 1)).toBe('succeeded');
    // Each step after those it waits for; the file's order otherwise.
    expect(run.steps.map((s) => s.name)).toEqual(['customers', 'suppliers', 'products', 'inventory', 'other']);
    for (const step of run.steps) {
      expect(step.status, step.name).toBe('succeeded');
      expect(step.loadId).toBeGreaterThan(0);
      for (const prerequisite of step.after) {
        expect(step.startedAt!.getTime(), `${step.name} after ${prerequisite}`).toBeGreaterThanOrEqual(
          stepOf(run, prerequisite).finishedAt!.getTime(),
        );
      }
    }
    expect(stepOf(run, 'inventory').after).toEqual(['suppliers', 'products']);
    expect(stepOf(run, 'products').counts).toMatchObject({ read: 5, inserted: 5 });
    expect(await countOf('acme')).toBe(3 + 4 + 5 + 6 + 2);
    // The loads are the catalog's: status shows their counts from there.
    const { rows } = await db.pool.query('select status from ferry.loads where id = $1', [stepOf(run, 'other').loadId]);
    expect(rows[0].status).toBe('succeeded');
  });

  it('a failing step skips its dependents, transitively; an independent branch still succeeds', async () => {
    const run = await runPlan(
      'failing.yaml',
      `steps:
  customers: { load: customers.csv, tenant: failing, mapping: products }
  bad: { load: bad.csv, tenant: failing, mapping: products, max_rejects: 0, after: [customers] }
  products: { load: products.csv, tenant: failing, mapping: products, after: [bad] }
  inventory: { load: inventory.csv, tenant: failing, mapping: products, after: [products, customers] }
  nowhere: { load: other.csv, tenant: failing, mapping: nowhere }
  after_nowhere: { load: other.csv, tenant: failing, mapping: products, after: [nowhere] }
  suppliers: { load: suppliers.csv, tenant: failing, mapping: products, after: [customers] }
`,
    );
    expect(run.status).toBe('failed');
    const status = Object.fromEntries(run.steps.map((s) => [s.name, s.status]));
    expect(status).toEqual({
      customers: 'succeeded',
      bad: 'failed',
      products: 'skipped',
      inventory: 'skipped',
      nowhere: 'failed',
      after_nowhere: 'skipped',
      suppliers: 'succeeded',
    });
    expect(stepOf(run, 'bad').error).toMatch(/1 rows rejected, more than --max-rejects 0: nothing was promoted/);
    expect(stepOf(run, 'bad').counts).toMatchObject({ read: 2, rejected: 1 });
    expect(stepOf(run, 'nowhere').error).toMatch(/nowhere/);
    expect(stepOf(run, 'products').error).toBe('not run: step bad failed');
    expect(stepOf(run, 'inventory').error).toBe('not run: step bad failed');
    expect(stepOf(run, 'products').startedAt).toBeNull();
    expect(run.finishedAt).not.toBeNull();
    // customers and suppliers promoted; bad promoted nothing.
    expect(await countOf('failing')).toBe(3 + 4);
    // Data failures are not retried: one attempt each.
    expect(workerLines.filter((l) => /step bad: started/.test(l))).toHaveLength(1);
  });

  it('--dry-run promotes nothing and reports what each step would have done', async () => {
    const run = await runPlan(
      'dry.yaml',
      `steps:
  customers: { load: customers.csv, tenant: dry, mapping: products }
  products: { load: products.csv, tenant: dry, mapping: products, after: [customers] }
`,
      { dryRun: true },
    );
    expect(run.dryRun).toBe(true);
    expect(run.status, JSON.stringify(run.steps, null, 1)).toBe('succeeded');
    expect(stepOf(run, 'customers').counts).toMatchObject({ read: 3, inserted: 3 });
    expect(stepOf(run, 'products').counts).toMatchObject({ read: 5, inserted: 5 });
    expect(await countOf('dry')).toBe(0);
    // A dry run's load leaves no row: the counts are the step's own.
    const { rows } = await db.pool.query('select count(*)::int as n from ferry.loads where id = any ($1)', [
      run.steps.map((s) => s.loadId),
    ]);
    expect(rows[0].n).toBe(0);
  });

  it('a sync step runs after the load it waits for', async () => {
    const run = await runPlan(
      'with-sync.yaml',
      `steps:
  customers: { load: customers.csv, tenant: synced, mapping: products }
  legacy: { sync: legacy, after: [customers] }
`,
    );
    expect(run.status, JSON.stringify(run.steps, null, 1)).toBe('succeeded');
    expect(stepOf(run, 'legacy')).toMatchObject({ kind: 'sync', status: 'succeeded' });
    expect(stepOf(run, 'legacy').counts).toMatchObject({ read: 2, inserted: 2 });
    expect(await countOf('synced')).toBe(3 + 2);
    const { rows } = await db.pool.query(`select cursor from ferry.sync_state where sync_name = 'legacy'`);
    expect(rows[0].cursor).toBe('2026-01-02 10:00:00+00');
  });

  it('a step whose file was loaded already is skipped, as pgferry load skips it; force: true loads it again', async () => {
    writeFile(dir, 'again.csv', 'sku,name,price\nA1,Again,1\n');
    const text = (force: string) => `steps:\n  again: { load: again.csv, tenant: acme, mapping: products${force} }\n`;
    const first = await runPlan('again.yaml', text(''));
    expect(stepOf(first, 'again').status).toBe('succeeded');
    const loaded = stepOf(first, 'again').loadId!;
    const loadsBefore = Number((await db.pool.query('select count(*) from ferry.loads')).rows[0].count);

    const second = await runPlan('again.yaml', text(''));
    const skipped = stepOf(second, 'again');
    expect(skipped.status).toBe('succeeded');
    expect(skipped.loadId).toBe(loaded);
    expect(skipped.error).toMatch(
      /^skipped: load \d+ loaded this file already \(force: true in the step loads it again\)$/,
    );
    expect(Number((await db.pool.query('select count(*) from ferry.loads')).rows[0].count)).toBe(loadsBefore);

    const forced = await runPlan('again.yaml', text(', force: true'));
    expect(stepOf(forced, 'again').loadId).toBeGreaterThan(loaded);
    expect(stepOf(forced, 'again').error).toBeNull();
  });

  it('max_duplicates fails a step whose file repeats keys more often than it allows, as load --max-duplicates', async () => {
    writeFile(dir, 'repeats.csv', 'sku,name,price\nR1,First,1\nR1,Second,2\nR1,Third,3\n');
    const text = (limit: number) =>
      `steps:\n  repeats: { load: repeats.csv, tenant: dry, mapping: products, max_duplicates: ${limit}, force: true }\n`;
    const strict = await runPlan('repeats.yaml', text(1));
    expect(stepOf(strict, 'repeats').status).toBe('failed');
    expect(stepOf(strict, 'repeats').error).toMatch(/duplicate/);
    const lenient = await runPlan('repeats.yaml', text(2));
    expect(stepOf(lenient, 'repeats').status).toBe('succeeded');
  });

  it('a backup step backs the tenant up before the load that waits for it, keeping the last N', async () => {
    const text = `steps:
  safety: { backup: acme, to: backups, keep: 1 }
  more: { load: other.csv, tenant: acme, mapping: products, after: [safety] }
`;
    const before = await countOf('acme');
    const run = await runPlan('with-backup.yaml', text);
    expect(run.status, JSON.stringify(run.steps, null, 1)).toBe('succeeded');
    expect(stepOf(run, 'safety')).toMatchObject({ kind: 'backup', status: 'succeeded' });
    const backups = path.join(dir, 'backups');
    const [first] = readdirSync(backups);
    expect((await verifyBackup(path.join(backups, first))).rows).toBe(before);
    await db.pool.query(`delete from app.products where tenant_id = 'acme' and sku like 'O%'`);
    expect((await runPlan('with-backup.yaml', text)).status).toBe('succeeded');
    expect(readdirSync(backups)).toHaveLength(1);
    expect(readdirSync(backups)[0]).not.toBe(first);

    const noFolder = await readPlan(planFile('bad-backup.yaml', 'steps:\n  b: { backup: acme }\n')).catch((e) => e);
    expect(noFolder).toMatchObject({ message: 'step b: to: is required', location: { line: 2 } });
    const keepNone = planFile('bad-keep.yaml', 'steps:\n  b: { backup: acme, to: x, keep: 0 }\n');
    await expect(readPlan(keepNone)).rejects.toThrow(/step b: keep: a whole number of backups, at least 1/);
  });

  it('knows whether a worker runs on the database', async () => {
    expect(await workerIsRunning(db.pool)).toBe(true);
    expect(await workerIsRunning(source.pool)).toBe(false);
  });
});

describe('the plan file', () => {
  /** The error readPlan throws for a plan, as { message, file, line }. */
  async function refused(text: string): Promise<{ message: string; file?: string; line?: number }> {
    const file = planFile('invalid.yaml', text);
    const error = await readPlan(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgferryError);
    const { message, location } = error as PgferryError;
    expect(location.file).toBe(path.resolve(file));
    return { message, line: location.line };
  }

  it('names the cycle, with the file and line', async () => {
    const { message, line } = await refused(`steps:
  a: { load: customers.csv, tenant: acme, mapping: products, after: [c] }
  b:
    load: customers.csv
    tenant: acme
    mapping: products
    after: [a]
  c:
    load: customers.csv
    tenant: acme
    mapping: products
    after: [b]
`);
    expect(message).toBe('steps a → b → c → a wait for each other: a cycle, no step of it could ever start');
    expect(line).toBe(2);
    expect(
      (
        await refused(`steps:
  a:
    load: customers.csv
    tenant: acme
    mapping: products
    after: a
`)
      ).line,
    ).toBe(6);
  });

  it('refuses an unknown step in after, an unknown key, a missing file or mapping, a sync not declared', async () => {
    expect(
      await refused(`steps:
  a: { load: customers.csv, tenant: acme, mapping: products }
  b:
    load: customers.csv
    tenant: acme
    mapping: products
    after: [a, nope]
`),
    ).toEqual({ message: 'step b: after: no step nope in this plan (its steps: a, b)', line: 7 });
    expect(
      await refused(`steps:
  a:
    load: customers.csv
    tenant: acme
    mapping: products
    max_reject: 3
`),
    ).toMatchObject({
      message: expect.stringMatching(/^step a: unknown key "max_reject" \(known for a load step: /),
      line: 6,
    });
    expect(
      await refused(`mappings: mappings\nstep:\n  a: { sync: legacy }\nsteps:\n  a: { sync: legacy }\n`),
    ).toMatchObject({
      message: 'unknown key "step" (known: name, project, mappings, steps)',
      line: 2,
    });
    expect(
      await refused(
        `steps:\n  a: { load: customers.csv, tenant: acme, mapping: products }\n  b:\n    load: gone.csv\n    tenant: acme\n    mapping: products\n`,
      ),
    ).toMatchObject({
      message: expect.stringMatching(/^step b: load: no such file gone\.csv \(relative to .*\/\)$/),
      line: 4,
    });
    expect(await refused(`steps:\n  a: { load: customers.csv, tenant: acme, mapping: missing }\n`)).toMatchObject({
      message: expect.stringMatching(/^step a: mapping "missing" not found/),
      line: 2,
    });
    expect(
      await refused(`steps:\n  x: { load: customers.csv, tenant: acme, mapping: products }\n  y:\n    sync: nosuch\n`),
    ).toMatchObject({ message: expect.stringMatching(/^step y: no sync nosuch in /), line: 3 });
  });
});

describe('the CLI', () => {
  it('plan run follows the run to its end; plan status shows it; a bad plan is exit 2 with file:line', async () => {
    const env = { DATABASE_URL: db.url };
    const file = planFile(
      'cli.yaml',
      `steps:
  customers: { load: customers.csv, tenant: cli, mapping: products }
  bad: { load: bad.csv, tenant: cli, mapping: products, max_rejects: 0, after: [customers] }
  products: { load: products.csv, tenant: cli, mapping: products, after: [bad] }
  other: { load: other.csv, tenant: cli, mapping: products }
`,
    );
    const run = await runCli(['plan', 'run', file], { env });
    expect(run.stderr).not.toMatch(/no pgferry worker/);
    expect(run.code).toBe(1);
    const runId = Number(/^plan run (\d+): cli, 4 steps$/m.exec(run.stdout)?.[1]);
    expect(runId).toBeGreaterThan(0);
    expect(run.stdout).toMatch(/^customers: succeeded \(load \d+: 3 read, 0 rejected, 3 inserted/m);
    expect(run.stdout).toMatch(/^bad: failed \(load \d+: .*\): 1 rows rejected/m);
    expect(run.stdout).toMatch(/^products: skipped: not run: step bad failed$/m);
    expect(run.stdout).toMatch(/^plan run \d+ \(cli, .*cli\.yaml\): failed$/m);

    const status = await runCli(['plan', 'status'], { env });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^plan run ${runId} \\(cli, `, 'm'));
    expect(status.stdout).toMatch(/^products\s+load\s+skipped\s+.*bad$/m);
    expect(status.stdout).toMatch(/^other\s+load\s+succeeded\s+\d+\s+2\s+0\s+2\s+0\s+0\s+-$/m);
    const json = JSON.parse((await runCli(['plan', 'status', String(runId), '--json'], { env })).stdout);
    expect(json).toMatchObject({ id: runId, status: 'failed', dryRun: false });
    expect(json.steps.map((s: { status: string }) => s.status)).toEqual([
      'succeeded',
      'failed',
      'skipped',
      'succeeded',
    ]);
    expect((await planStatus(db.pool, runId)).steps[3].counts).toMatchObject({ read: 2, inserted: 2 });

    const invalid = planFile(
      'cli-bad.yaml',
      'steps:\n  a: { load: customers.csv, tenant: cli, mapping: products, after: [b] }\n',
    );
    const refused = await runCli(['plan', 'run', invalid], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/cli-bad\.yaml:2: step a: after: no step b in this plan/);
  });
});
