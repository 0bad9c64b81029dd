// Two loads into the same tenant and table take turns at promotion, and the second says whom it
// waits for; loads of different tenants do not wait for each other.
import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import type { LoadEvent } from '../src/load/types.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'globex']);
  mapping = productsMapping(dir);
  // A slow promotion, on demand: rows named 'slow' make the insert sleep.
  await db.pool.query(`
    create function app.slow_insert() returns trigger language plpgsql as $$
    begin
      if exists (select from new_rows where name = 'slow') then perform pg_sleep(2); end if;
      return null;
    end $$;
    create trigger products_slow after insert on app.products
      referencing new table as new_rows for each statement execute function app.slow_insert();`);
});

/** Resolves once a session names itself as promoting that load. */
async function promoting(loadId: () => number | undefined): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const id = loadId();
    if (id !== undefined) {
      const { rows } = await db.pool.query(`select 1 from pg_stat_activity where application_name = $1`, [
        `pgferry load ${id}`,
      ]);
      if (rows.length) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('the first load never reached promotion');
}

describe('concurrent loads', () => {
  it('the same tenant and table: the second waits, says for which load, and both land', async () => {
    let firstId: number | undefined;
    const first = load(db.pool, {
      file: writeFile(dir, 'slow.csv', 'sku,name,price\nS1,slow,1\n'),
      tenant: 'acme',
      mapping,
      onEvent: (e) => {
        if (e.type === 'registered') firstId = e.loadId;
      },
    });
    await promoting(() => firstId);
    const events: LoadEvent[] = [];
    const second = await load(db.pool, {
      file: writeFile(dir, 'fast.csv', 'sku,name,price\nS1,second,2\nS2,other,3\n'),
      tenant: 'acme',
      mapping,
      onEvent: (e) => events.push(e),
    });
    expect((await first).status).toBe('succeeded');
    expect(second.status).toBe('succeeded');
    expect(events).toContainEqual({ type: 'waiting', forLoad: firstId });
    // The second load was planned after the first committed: S1 is an update, not a conflict.
    expect(second.counts).toMatchObject({ inserted: 1, updated: 1 });
    const { rows } = await db.pool.query(`select sku, name from app.products where tenant_id = 'acme' order by sku`);
    expect(rows).toEqual([
      { sku: 'S1', name: 'second' },
      { sku: 'S2', name: 'other' },
    ]);
  });

  it('different tenants do not wait for each other', async () => {
    let firstId: number | undefined;
    let firstDone = false;
    const first = load(db.pool, {
      file: writeFile(dir, 'slow2.csv', 'sku,name,price\nT1,slow,1\n'),
      tenant: 'acme',
      mapping,
      onEvent: (e) => {
        if (e.type === 'registered') firstId = e.loadId;
      },
    }).finally(() => (firstDone = true));
    await promoting(() => firstId);
    const events: LoadEvent[] = [];
    const other = await load(db.pool, {
      file: writeFile(dir, 'globex.csv', 'sku,name,price\nT1,globex,5\n'),
      tenant: 'globex',
      mapping,
      onEvent: (e) => events.push(e),
    });
    expect(other.status).toBe('succeeded');
    expect(firstDone).toBe(false);
    expect(events.filter((e) => e.type === 'waiting')).toEqual([]);
    expect((await first).status).toBe('succeeded');
  });
});
