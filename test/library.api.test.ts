// The public API alone (src/index.ts), no CLI: what the commands do, a Node program does too —
// add a tenant, protect a table, validate, load, show the mapping, roll back, cancel a queued
// load, run / list / pause / unpause a sync, queue a plan and read its status.
import { beforeAll, describe, expect, it } from 'vitest';

import {
  addTenant,
  cancelLoad,
  getLoad,
  listAudit,
  listRejects,
  listSyncs,
  listTenants,
  load,
  pauseSync,
  PgferryError,
  planStatus,
  protectTable,
  readProject,
  rollback,
  runPlan,
  runSync,
  showMapping,
  unpauseSync,
  validate,
} from '../src/index.js';
import { PRODUCTS_DDL, productsMapping, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
const source: TestDatabase = await createTestDatabase();
let dir: string;

const products = async () =>
  (await db.pool.query('select tenant_id, sku, price::text from app.products order by sku')).rows;

beforeAll(async () => {
  dir = tempDir();
  await db.pool.query('create schema app');
  await db.pool.query(PRODUCTS_DDL);
  productsMapping(dir);
  await source.pool.query(`create table items (sku text primary key, name text, price numeric, changed date);
    insert into items values ('K1', 'Kiwi', 1, '2026-05-01'), ('K2', 'Kale', 2, '2026-05-02')`);
  process.env.PGFERRY_TEST_LIBRARY_SOURCE = source.url;
  writeFile(
    dir,
    'pgferry.yaml',
    `mappings: .
syncs:
  kiwis:
    from: env:PGFERRY_TEST_LIBRARY_SOURCE
    table: items
    cursor: changed
    tenant: acme
    mapping: products
    schedule: "0 3 * * *"
`,
  );
});

describe('the library, without the CLI', () => {
  it('adds a tenant and protects a table', async () => {
    expect(await addTenant(db.pool, 'acme')).toMatchObject({ slug: 'acme', tenantKey: 'acme' });
    expect((await listTenants(db.pool)).map((t) => t.slug)).toEqual(['acme']);
    expect(await protectTable(db.pool, 'app.products')).toMatchObject({
      schema_name: 'app',
      table_name: 'products',
      tenant_column: 'tenant_id',
    });
  });

  it('validates a file (nothing loaded), loads it, shows its mapping, lists its rejects and rolls it back', async () => {
    const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA1,Anvil,10.50\nB2,Bolt,0.25\nC3,Crate,cheap\n');
    const options = { file, tenant: 'acme', mapping: 'products', mappingsDir: dir };

    const checked = await validate(db.pool, options);
    expect(checked.status).toBe('dry_run');
    expect(checked.counts).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    expect(await products()).toEqual([]);

    const loaded = await load(db.pool, options);
    expect(loaded.status).toBe('succeeded');
    expect(loaded.counts).toMatchObject({ read: 3, inserted: 2, rejected: 1 });
    expect(await products()).toEqual([
      { tenant_id: 'acme', sku: 'A1', price: '10.50' },
      { tenant_id: 'acme', sku: 'B2', price: '0.25' },
    ]);
    const rejects = await listRejects(db.pool, loaded.loadId!);
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({ column: 'price', value: 'cheap' });

    const mapping = await showMapping(db.pool, 'products');
    expect(mapping).toMatchObject({ name: 'products', version: 1, target: 'app.products', keyColumns: ['sku'] });
    expect(mapping.compiledSql).toMatch(/transform_/);
    await expect(showMapping(db.pool, 'products', { version: 9 })).rejects.toSatisfy(
      (error) =>
        error instanceof PgferryError &&
        error.message === 'mapping products has no version 9' &&
        error.hint === 'versions: 1',
    );

    expect(await rollback(db.pool, loaded.loadId!)).toMatchObject({ outcome: 'rolled_back', deleted: 2 });
    expect(await products()).toEqual([]);
    expect((await listAudit(db.pool, { tenant: 'acme' })).map((e) => e.command)).toContain('rollback');
  });

  it('cancels a queued load, and says so when asked again', async () => {
    const file = writeFile(dir, 'queued.csv', 'sku,name,price\nQ1,Quince,1\n');
    const queued = await load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir, queue: true });
    expect(queued.status).toBe('queued');
    const loadId = queued.loadId!;
    expect(await cancelLoad(db.pool, loadId)).toEqual({ loadId, outcome: 'cancelled' });
    expect((await getLoad(db.pool, loadId)).status).toBe('cancelled');
    const { rows: jobs } = await db.pool.query('select 1 from graphile_worker.jobs where key = $1', [
      `pgferry_load:${loadId}`,
    ]);
    expect(jobs).toEqual([]);
    expect(await cancelLoad(db.pool, loadId)).toEqual({ loadId, outcome: 'already_ended', status: 'cancelled' });
  });

  it('runs a sync, lists it with its cursor and next run, pauses and unpauses it', async () => {
    const project = await readProject(`${dir}/pgferry.yaml`);
    const synced = await runSync(db.pool, project, 'kiwis');
    expect(synced).toMatchObject({ sync: 'kiwis', full: true, cursorFrom: null });
    expect(synced.result).toMatchObject({ status: 'succeeded', counts: { inserted: 2 } });

    const [listed] = await listSyncs(db.pool, project);
    expect(listed).toMatchObject({
      name: 'kiwis',
      tenant: 'acme',
      schedule: '0 3 * * *',
      cursor: '2026-05-02',
      lastOutcome: 'succeeded',
      lastLoad: synced.result.loadId,
      paused: false,
    });
    expect(listed.nextRun?.getUTCHours()).toBe(3);

    await pauseSync(db.pool, project, 'kiwis', { by: 'library-test' });
    expect((await listSyncs(db.pool, project))[0]).toMatchObject({ paused: true, nextRun: null });
    const { rows } = await db.pool.query("select paused_by from ferry.syncs where name = 'kiwis'");
    expect(rows[0].paused_by).toBe('library-test');
    await unpauseSync(db.pool, project, 'kiwis');
    expect((await listSyncs(db.pool, project))[0].paused).toBe(false);

    await expect(pauseSync(db.pool, project, 'nope')).rejects.toThrow(/no sync nope in .*pgferry\.yaml/);
  });

  it('queues a plan without following it, and reads its status', async () => {
    await expect(planStatus(db.pool)).rejects.toSatisfy(
      (error) => error instanceof PgferryError && error.message === 'no plan has run yet',
    );
    writeFile(dir, 'plan-a.csv', 'sku,name,price\nP1,Pear,1\n');
    const planFile = writeFile(
      dir,
      'catalog.plan.yaml',
      `mappings: .
steps:
  a: { load: plan-a.csv, tenant: acme, mapping: products }
  b: { load: plan-a.csv, tenant: acme, mapping: products, after: [a] }
`,
    );
    const events: string[] = [];
    const started = await runPlan(db.pool, planFile, { detach: true, onEvent: (e) => events.push(e.type) });
    expect(started).toMatchObject({ queued: ['a'], workerRunning: false, final: null });
    expect(events).toEqual(['started']);
    const run = await planStatus(db.pool);
    expect(run).toMatchObject({ id: started.runId, status: 'running', dryRun: false });
    expect(run.steps.map((s) => [s.name, s.status])).toEqual([
      ['a', 'queued'],
      ['b', 'pending'],
    ]);
  });
});
