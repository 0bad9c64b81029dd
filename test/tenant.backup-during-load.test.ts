// A backup taken while a load of the same tenant runs holds all of the load or none of it
// (one repeatable-read snapshot; the load's promotion commits whole), and a restore writes
// its rows as the tenant, like a load: the application's triggers see the tenant's role. The
// tenant's mapping versions and syncs travel with its rows. Restores and purges wait for, or
// refuse, the tenant's running loads.
import { PassThrough } from 'node:stream';

import { beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { load } from '../src/load/load.js';
import { backupTenant } from '../src/tenant-backup/backup-tenant.js';
import { purgeTenant } from '../src/tenant-backup/purge-tenant.js';
import { restoreTenant } from '../src/tenant-backup/restore-tenant.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { statusOnceSettled } from './helpers/tenant-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
const LOADED = 30_000;
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'bob']);
  productsMapping(dir);
  await db.pool.query(`insert into app.products (tenant_id, sku, name, price)
    select 'acme', 'OLD-' || i, 'old ' || i, i from generate_series(1, 500) i`);
});

/** The rows a backup holds, per table, read back from its manifest. */
async function backupRows(): Promise<number> {
  const sink = new PassThrough();
  sink.resume();
  const result = await backupTenant(db.pool, { tenant: 'acme', output: sink, gzip: false });
  return result.trailer.tables[0].rows;
}

describe('a backup during a load', () => {
  it('holds all of the load or none of it', async () => {
    const lines = ['sku,name,price'];
    for (let i = 1; i <= LOADED; i++) lines.push(`NEW-${i},new ${i},${i % 100}`);
    const file = writeFile(dir, 'catalog.csv', `${lines.join('\n')}\n`);
    const loading = load(db.pool, { file, tenant: 'acme', mapping: 'products', mappingsDir: dir });
    let settled = false;
    void loading.finally(() => (settled = true));

    const seen: number[] = [];
    while (!settled) seen.push(await backupRows());
    const result = await loading;
    expect(result.status).toBe('succeeded');
    seen.push(await backupRows());

    expect(seen.length).toBeGreaterThan(2);
    for (const rows of seen) expect([500, 500 + LOADED]).toContain(rows);
    expect(seen[0]).toBe(500);
    expect(seen[seen.length - 1]).toBe(500 + LOADED);
  });

  it('a restore waits for a promotion into the tenant table to commit (the lock loads take)', async () => {
    const file = writeFile(dir, 'acme-wait.pgferry', Buffer.alloc(0));
    await backupTenant(db.pool, { tenant: 'acme', output: file });
    const promotion = await db.pool.connect();
    try {
      await promotion.query('begin');
      await promotion.query(`select ferry.lock_row('target', 'acme:app.products')`);
      let settled = false;
      const restoring = restoreTenant(db.pool, { input: file, replace: true }).finally(() => (settled = true));
      // The restore's session comes to wait on the lock the "promotion" holds.
      let waiting = 0;
      for (let i = 0; i < 100 && waiting === 0 && !settled; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const { rows } = await db.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock' and pid <> $1`,
          [(promotion as unknown as { processID: number }).processID],
        );
        waiting = rows[0].n;
      }
      expect(settled).toBe(false);
      expect(waiting).toBe(1);
      await promotion.query('commit');
      expect((await restoring).rows).toBe(500 + LOADED);
    } finally {
      promotion.release();
    }
  });

  it('restores rows as the tenant: a trigger of the application sees its role', async () => {
    await db.pool.query(`
      create table app.writers (who name);
      grant insert on app.writers to public;
      create function app.note_writer() returns trigger language plpgsql as $$
      begin
        insert into app.writers values (current_user);
        return null;
      end $$;
      create trigger note_writer after insert on app.products for each statement execute function app.note_writer()`);
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    await backupTenant(db.pool, { tenant: 'acme', output: sink });
    const file = writeFile(dir, 'acme.pgferry', Buffer.concat(chunks));
    await restoreTenant(db.pool, { input: file, as: 'carol' });
    const { rows } = await db.pool.query(`select who::text from app.writers`);
    const { rows: role } = await db.pool.query(`select role_name::text from ferry.tenants where slug = 'carol'`);
    expect(rows).toEqual([{ who: role[0].role_name }]);
    const { rows: counts } = await db.pool.query(
      `select tenant_id, count(*)::int as n from app.products group by 1 order by 1`,
    );
    expect(counts).toEqual([
      { tenant_id: 'acme', n: 500 + LOADED },
      { tenant_id: 'carol', n: 500 + LOADED },
    ]);
  });

  it("carries the tenant's mapping versions and syncs with their state into another database", async () => {
    await db.pool.query(
      `select ferry.declare_sync('acme_legacy', 'acme', 'products', 'upsert', '*/5 * * * *', '{"table": "items"}')`,
    );
    await db.pool.query(
      `update ferry.sync_state set cursor = '2026-01-02', cursor_type = 'date' where sync_name = 'acme_legacy'`,
    );
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const backup = await backupTenant(db.pool, { tenant: 'acme', output: sink });
    expect(backup.header.catalog.mappings.map((m) => [m.name, m.version, m.target])).toEqual([
      ['products', 1, 'app.products'],
    ]);
    expect(backup.header.catalog.syncs).toMatchObject([
      { name: 'acme_legacy', mapping: 'products', mode: 'upsert', state: { cursor: '2026-01-02' } },
    ]);
    const file = writeFile(dir, 'acme-catalog.pgferry', Buffer.concat(chunks));

    const other = await createTestDatabase();
    await productsTable(other.pool, []);
    const restored = await restoreTenant(other.pool, { input: file, as: 'acme2' });
    expect(restored.catalog).toEqual({ mappings: 1, syncs: 1, skipped: [] });
    const { rows: mappings } = await other.pool.query('select name, version, sha256 from ferry.mappings');
    const { rows: source } = await db.pool.query('select name, version, sha256 from ferry.mappings');
    expect(mappings).toEqual(source);
    const { rows: syncs } = await other.pool.query(
      `select s.name, t.slug, s.schedule, st.cursor from ferry.syncs s join ferry.tenants t on t.id = s.tenant_id
       left join ferry.sync_state st on st.sync_name = s.name`,
    );
    expect(syncs).toEqual([{ name: 'acme_legacy', slug: 'acme2', schedule: '*/5 * * * *', cursor: '2026-01-02' }]);

    // Restored once more, under a third name: the sync's name is taken, and it says so.
    const again = await restoreTenant(other.pool, { input: file, as: 'acme3' });
    expect(again.catalog).toEqual({
      mappings: 1,
      syncs: 0,
      skipped: ['sync acme_legacy (a sync of that name exists here)'],
    });
  });

  it('a purge is refused while a load of the tenant runs, and takes an interrupted one with it', async () => {
    const { rows } = await db.pool.query<{ id: number }>(
      `select (ferry.register_load('bob', m.id, 'bob.csv', null, 0, 'csv', '{}', 'test')).id::int as id
       from ferry.mappings m where m.name = 'products'`,
    );
    const loadId = rows[0].id;
    await db.pool.query(`update ferry.loads set status = 'staging' where id = $1`, [loadId]);
    const runner = await db.pool.connect();
    try {
      await runner.query('select ferry.claim_load($1)', [loadId]);
      const refusal = await purgeTenant(db.pool, 'bob').catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(PgferryError);
      expect((refusal as Error).message).toBe(`load ${loadId} of tenant bob is running`);
    } finally {
      runner.release(true);
    }
    // Its process gone (once the server has noticed its closed connection), the load is only
    // interrupted: purged with the tenant.
    expect(await statusOnceSettled(db.pool, loadId, 'interrupted')).toBe('interrupted');
    const purged = await purgeTenant(db.pool, 'bob');
    expect(purged.catalog.loads).toBe(1);
    const { rows: left } = await db.pool.query('select count(*)::int as n from ferry.loads where id = $1', [loadId]);
    expect(left[0].n).toBe(0);
  });
});
