// Every command that changes data or configuration leaves a line in ferry.audit, and
// `pgferry audit` shows them; `pgferry validate` checks a file and leaves nothing else.
import { beforeAll, describe, expect, it } from 'vitest';

import { listAudit } from '../src/audit.js';
import { load } from '../src/load/load.js';
import { pruneUndo } from '../src/prune.js';
import { rollback } from '../src/rollback.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { PRODUCTS_DDL, productsMapping, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  mapping = productsMapping(dir);
  await db.pool.query('create schema app');
  await db.pool.query(PRODUCTS_DDL);
});

describe('ferry.audit', () => {
  it('has a line for each change: tenant add, protect, load, rollback, prune — and refusals', async () => {
    await addTenant(db.pool, 'acme');
    await expect(addTenant(db.pool, 'Not A Slug')).rejects.toThrow(/invalid tenant name/);
    await protectTable(db.pool, 'app.products');
    const file = writeFile(dir, 'a.csv', 'sku,name,price\nA,apple,1\n');
    const loaded = await load(db.pool, { file, tenant: 'acme', mapping });
    await rollback(db.pool, loaded.loadId!);
    await pruneUndo(db.pool, { olderThanDays: 30 });

    const entries = await listAudit(db.pool, { limit: 100 });
    const lines = entries.reverse().map((e) => `${e.command} ${e.outcome}${e.tenant ? ` ${e.tenant}` : ''}`);
    expect(lines).toEqual([
      'tenant add added acme',
      'tenant add failed Not A Slug',
      'tenant protect protected',
      'load registered acme',
      'load succeeded acme',
      'rollback rolled_back acme',
      'prune pruned',
    ]);
    for (const e of entries) {
      expect(e.osUser).toBeTruthy();
      expect(e.dbRole).toBeTruthy();
    }
    const loadLine = entries.find((e) => e.command === 'load' && e.outcome === 'succeeded')!;
    expect(loadLine.loadId).toBe(loaded.loadId);
    expect(loadLine.details).toMatchObject({ counts: { inserted: 1 } });
  });

  it('pgferry audit filters by tenant and time', async () => {
    const env = { DATABASE_URL: db.url };
    const all = await runCli(['audit', '--json'], { env });
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout).length).toBeGreaterThanOrEqual(7);
    const acme = JSON.parse((await runCli(['audit', '--tenant', 'acme', '--json'], { env })).stdout);
    expect(acme.every((e: { tenant: string }) => e.tenant === 'acme')).toBe(true);
    const future = await runCli(['audit', '--since', '2999-01-01'], { env });
    expect(future.stdout).toMatch(/no audit lines match/);
    const table = await runCli(['audit', '--since', '1h', '-n', '3'], { env });
    expect(table.stdout.split('\n')[0]).toMatch(/at\s+os user\s+role\s+command\s+tenant\s+load\s+outcome/);
    const bad = await runCli(['audit', '--since', 'yesterday'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--since must be a date/);
  });
});

describe('pgferry validate', () => {
  it('reports rejects and would-be counts, changes nothing, and validates a file loaded before', async () => {
    const env = { DATABASE_URL: db.url };
    const file = writeFile(dir, 'v.csv', 'sku,name,price\nA,apple,1\nB,banana,oops\nC,cherry,3\n');
    await load(db.pool, { file, tenant: 'acme', mapping });
    await db.pool.query(`update app.products set name = 'changed' where sku = 'A'`);
    const before = await db.pool.query('select * from app.products order by sku');
    const loads = await db.pool.query('select count(*)::int as n from ferry.loads');

    const run = await runCli(['validate', file, '-t', 'acme', '-m', mapping, '--json'], { env });
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe('dry_run');
    expect(result.counts).toMatchObject({ read: 3, rejected: 1, updated: 1, unchanged: 1, inserted: 0 });
    expect(result.reasons).toEqual([expect.objectContaining({ rule: 'type', column: 'price' })]);

    expect((await db.pool.query('select * from app.products order by sku')).rows).toEqual(before.rows);
    expect((await db.pool.query('select count(*)::int as n from ferry.loads')).rows[0].n).toBe(loads.rows[0].n);
    const text = await runCli(['validate', file, '-t', 'acme', '-m', mapping], { env });
    expect(text.stdout).toMatch(/would be/);
  });
});
