// pgferry rollback: a committed load reverted from its undo log, refusing (unless forced) when
// a row it wrote was changed since; and pgferry prune.
import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import type { LoadResult } from '../src/load/types.js';
import { pruneUndo } from '../src/prune.js';
import { rollback } from '../src/rollback.js';
import { productsMapping, productsTable, registerLoadLike, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex']);
  mapping = productsMapping(dir);
});

let fileNumber = 0;
async function run(csv: string, tenant = 'acme', extra: object = {}): Promise<LoadResult & { loadId: number }> {
  const file = writeFile(dir, `f${fileNumber++}.csv`, `sku,name,price\n${csv}`);
  const result = await load(db.pool, { file, tenant, mapping, force: true, ...extra });
  expect(result.error).toBeUndefined();
  expect(result.status).toBe('succeeded');
  return { ...result, loadId: result.loadId! };
}

async function products(tenant = 'acme'): Promise<string[]> {
  const { rows } = await db.pool.query(
    `select sku, name, price::text from app.products where tenant_id = $1 order by sku`,
    [tenant],
  );
  return rows.map((r) => `${r.sku} ${r.name} ${r.price}`);
}

async function status(loadId: number): Promise<string> {
  const { rows } = await db.pool.query('select status from ferry.loads where id = $1', [loadId]);
  return rows[0].status;
}

async function reset(): Promise<void> {
  await db.pool.query('truncate app.products');
}

describe('pgferry rollback', () => {
  it('deletes the rows a load inserted and restores those it updated; a second rollback is a no-op', async () => {
    await reset();
    await run('A,apple,1\nB,banana,2\nC,cherry,3\n');
    const before = await products();
    // Many batches: the inserted keys are kept one array a batch.
    const second = await run('B,blueberry,20\nD,date,4\nE,elder,5\nF,fig,6\n', 'acme', { batchSize: 2 });
    expect(second.counts).toMatchObject({ inserted: 3, updated: 1, unchanged: 0 });
    expect(await products()).not.toEqual(before);

    const result = await rollback(db.pool, second.loadId);
    expect(result).toMatchObject({ outcome: 'rolled_back', deleted: 3, restored: 1, conflicts: [] });
    expect(await products()).toEqual(before);
    expect(await status(second.loadId)).toBe('rolled_back');

    const again = await rollback(db.pool, second.loadId);
    expect(again).toMatchObject({ outcome: 'already_rolled_back', deleted: 0, restored: 0 });
    expect(await products()).toEqual(before);
    const { rows: audit } = await db.pool.query(
      `select command, outcome, tenant, details from ferry.audit where load_id = $1 and command = 'rollback'`,
      [second.loadId],
    );
    expect(audit).toEqual([
      expect.objectContaining({
        outcome: 'rolled_back',
        tenant: 'acme',
        details: expect.objectContaining({ deleted: 3 }),
      }),
    ]);
  });

  it('refuses when another write changed a row since, lists its key, and changes nothing; --force restores', async () => {
    await reset();
    await run('A,apple,1\nB,banana,2\n');
    const second = await run('A,apricot,10\nC,cherry,3\n');
    await db.pool.query(`update app.products set price = 99 where sku = 'C'`);
    const afterEdit = await products();

    const refused = await rollback(db.pool, second.loadId);
    expect(refused.outcome).toBe('conflicts');
    expect(refused.conflicts).toEqual([{ key: { sku: 'C' }, problem: 'changed since the load' }]);
    expect(await products()).toEqual(afterEdit);
    expect(await status(second.loadId)).toBe('succeeded');

    const forced = await rollback(db.pool, second.loadId, { force: true });
    expect(forced).toMatchObject({ outcome: 'rolled_back', deleted: 1, restored: 1 });
    expect(await products()).toEqual(['A apple 1.00', 'B banana 2.00']);
  });

  it('sees a later load as a change: the later load must be rolled back first', async () => {
    await reset();
    const first = await run('A,apple,1\n');
    const second = await run('A,avocado,5\n');
    const refused = await rollback(db.pool, first.loadId);
    expect(refused.outcome).toBe('conflicts');
    expect(refused.conflicts).toEqual([{ key: { sku: 'A' }, problem: 'changed since the load' }]);
    expect((await rollback(db.pool, second.loadId)).outcome).toBe('rolled_back');
    // Restoring the before-image is itself a change: the first load's row is no longer as it wrote it.
    expect((await rollback(db.pool, first.loadId, { force: true })).outcome).toBe('rolled_back');
    expect(await products()).toEqual([]);
  });

  it('with --force, brings back an updated row that was deleted since', async () => {
    await reset();
    await run('A,apple,1\n');
    const second = await run('A,apricot,10\n');
    await db.pool.query(`delete from app.products where sku = 'A'`);
    const refused = await rollback(db.pool, second.loadId);
    expect(refused.conflicts).toEqual([{ key: { sku: 'A' }, problem: 'deleted since the load' }]);
    const forced = await rollback(db.pool, second.loadId, { force: true });
    expect(forced).toMatchObject({ outcome: 'rolled_back', restored: 1 });
    expect(await products()).toEqual(['A apple 1.00']);
  });

  it("touches only the load's tenant: another tenant's rows with the same keys stay", async () => {
    await reset();
    await run('A,globex apple,7\nB,globex banana,8\n', 'globex');
    const acme = await run('A,apple,1\nB,banana,2\n');
    expect((await rollback(db.pool, acme.loadId)).outcome).toBe('rolled_back');
    expect(await products('acme')).toEqual([]);
    expect(await products('globex')).toEqual(['A globex apple 7.00', 'B globex banana 8.00']);
  });

  it('restores updated rows after the table gained and lost a column since the load', async () => {
    await reset();
    await db.pool.query('alter table app.products add column note text');
    try {
      await run('A,apple,1\nB,banana,2\nC,cherry,3\n');
      const before = await products();
      // Two batches of updates: each kept with the columns the table had then.
      const second = await run('A,avocado,10\nB,blueberry,20\nC,cherry,3\n', 'acme', { batchSize: 1 });
      expect(second.counts).toMatchObject({ updated: 2, unchanged: 1 });
      await db.pool.query('alter table app.products drop column note, add column origin text');
      const result = await rollback(db.pool, second.loadId);
      expect(result).toMatchObject({ outcome: 'rolled_back', deleted: 0, restored: 2, conflicts: [] });
      expect(await products()).toEqual(before);
    } finally {
      await db.pool.query('alter table app.products drop column if exists note, drop column if exists origin');
    }
  });

  it('a load that changed nothing rolls back to nothing', async () => {
    await reset();
    await run('A,apple,1\n');
    const same = await run('A,apple,1\n');
    expect(same.counts.unchanged).toBe(1);
    expect(await rollback(db.pool, same.loadId)).toMatchObject({ outcome: 'rolled_back', deleted: 0, restored: 0 });
    expect(await products()).toEqual(['A apple 1.00']);
  });

  it('refuses loads that did not succeed, and unknown loads, with a clear error', async () => {
    // A negative price breaks the table's CHECK: with --max-rejects 0 the load fails.
    const file = writeFile(dir, 'bad.csv', 'sku,name,price\nZ,zed,-1\n');
    const failed = await load(db.pool, { file, tenant: 'acme', mapping, maxRejects: 0 });
    expect(failed.status).toBe('failed');
    await expect(rollback(db.pool, failed.loadId!)).rejects.toThrow(
      /is failed: only a succeeded load can be rolled back/,
    );
    await expect(rollback(db.pool, 999_999)).rejects.toThrow(/no load 999999/);
  });

  it('refuses a load that has not finished with its status, not "RAISE statement option cannot be null"', async () => {
    const done = await run('Q,quince,1\n');
    const waiting = await registerLoadLike(db.pool, done.loadId);
    await expect(rollback(db.pool, waiting)).rejects.toThrow(/is registered: only a succeeded load can be rolled back/);
  });
});

describe('pgferry prune', () => {
  it('removes old undo logs; those loads can no longer be rolled back', async () => {
    await reset();
    const old = await run('P,pear,1\n');
    await db.pool.query(`update ferry.loads set finished_at = now() - interval '40 days' where id = $1`, [old.loadId]);
    const recent = await run('Q,quince,2\n');
    const pruned = await pruneUndo(db.pool, { olderThanDays: 30 });
    expect(pruned.loads).toBeGreaterThanOrEqual(1);
    const { rows } = await db.pool.query('select load_id from ferry.undo where load_id in ($1, $2)', [
      old.loadId,
      recent.loadId,
    ]);
    expect(rows.map((r) => Number(r.load_id))).toEqual([recent.loadId]);
    await expect(rollback(db.pool, old.loadId)).rejects.toThrow(/was pruned/);
    expect((await rollback(db.pool, recent.loadId)).outcome).toBe('rolled_back');
  });
});

describe('the CLI', () => {
  it('prints what it did, exits 1 on conflicts and 0 on a repeated rollback', async () => {
    await reset();
    await run('A,apple,1\n');
    const second = await run('A,apricot,10\n');
    await db.pool.query(`update app.products set price = 11 where sku = 'A'`);
    const env = { DATABASE_URL: db.url };
    const refused = await runCli(['rollback', String(second.loadId)], { env });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/not rolled back: 1 rows it wrote were changed since/);
    expect(refused.stdout).toMatch(/\{"sku":"A"\}\s+changed since the load/);
    const forced = await runCli(['rollback', String(second.loadId), '--force'], { env });
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/rolled back: 0 inserted rows deleted, 1 updated rows restored/);
    const again = await runCli(['rollback', String(second.loadId)], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already rolled back/);
    const unknown = await runCli(['rollback', '999999'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no load 999999/);
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
  });
});
