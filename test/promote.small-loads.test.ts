import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import type { LoadOptions, LoadResult } from '../src/load/types.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

// A small load into a large target (a sync's increment): its rows are looked up in the
// target by key, and its updates find each row again by ctid (sql/functions/promotion.sql).

let db: TestDatabase;
let dir: string;
const OTHER_ROWS = 100_000;
const ACME_ROWS = 30_000;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  // Statistics that have never seen acme: taken when the table held the other tenant alone,
  // and never again (no autovacuum). Then acme's rows arrive.
  await db.pool.query(`
    create schema app;
    create table app.items (
      tenant_id text not null,
      id        bigint not null,
      name      text not null,
      primary key (tenant_id, id)
    ) with (autovacuum_enabled = false);
    insert into app.items select 'other', g, 'item ' || g from generate_series(1, ${OTHER_ROWS}) g;
    analyze app.items;
    insert into app.items select 'acme', g, 'item ' || g from generate_series(1, ${ACME_ROWS}) g;
    create table app.settings_seen (at text, seqscan text, indexscan text);
    create function app.note_settings() returns trigger language plpgsql as $$
    begin
      insert into app.settings_seen values (tg_argv[0], current_setting('enable_seqscan'), current_setting('enable_indexscan'));
      return new;
    end $$;
    create trigger items_during before update on app.items
      for each row when (new.id = 1) execute function app.note_settings('update');
    -- Deferred: runs at the promoting transaction's commit, after promotion and verify.
    create constraint trigger items_at_commit after update on app.items deferrable initially deferred
      for each row when (new.id = 1) execute function app.note_settings('commit');
    grant insert on app.settings_seen to public;
  `);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.items');
  writeFile(dir, 'items.sql', `-- target: app.items\n-- key: id\nselect s.id as id, s.name as name\nfrom staged s\n`);
});

interface TargetReads {
  seqScans: number;
  indexScans: number;
  indexRowsRead: number;
}

async function targetReads(table = 'app.items'): Promise<TargetReads> {
  const { rows } = await db.pool.query<{ seq_scan: string; idx_scan: string; idx_tup_read: string }>(
    `select t.seq_scan,
            (select sum(i.idx_scan) from pg_stat_user_indexes i where i.relid = t.relid) as idx_scan,
            (select sum(i.idx_tup_read) from pg_stat_user_indexes i where i.relid = t.relid) as idx_tup_read
     from pg_stat_user_tables t where t.relid = $1::regclass`,
    [table],
  );
  return {
    seqScans: Number(rows[0].seq_scan),
    indexScans: Number(rows[0].idx_scan),
    indexRowsRead: Number(rows[0].idx_tup_read),
  };
}

/**
 * The table's counters once `reported` holds for them: an exited backend's counters reach
 * them a moment later. After 20 s they are returned as they are, for the assertions to judge.
 */
async function readsOnceReported(table: string, reported: (reads: TargetReads) => boolean): Promise<TargetReads> {
  let reads!: TargetReads; // until() asks at least once
  await until(async () => reported((reads = await targetReads(table))), 20_000).catch(() => {});
  return reads;
}

/** A load on connections of its own, closed after it: a backend that exits reports its counters. */
async function loadOnOwnPool(options: LoadOptions): Promise<LoadResult> {
  const pool = new pg.Pool({ connectionString: db.url });
  try {
    return await load(pool, options);
  } finally {
    await pool.end();
  }
}

describe('a small load into a large target', () => {
  it('reads the pulled rows by key, even where the statistics never saw the tenant', async () => {
    const changed = 5_000;
    const lines = ['id,name'];
    for (let id = 1; id <= changed; id++) lines.push(`${id},renamed ${id}`);
    const file = writeFile(dir, 'changed.csv', `${lines.join('\n')}\n`);
    const before = await targetReads();
    const result = await loadOnOwnPool({ file, tenant: 'acme', mapping: 'items', mappingsDir: dir, batchSize: 1_000 });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ staged: changed, updated: changed, inserted: 0, unchanged: 0 });

    // PostgreSQL 17 and later: one scan of the key index for all the keys (a key of one
    // column); before 17, one lookup a pulled row.
    const { rows: version } = await db.pool.query(`select current_setting('server_version_num')::int as v`);
    const scans = version[0].v >= 170000 ? 1 : changed;
    // Read before this test's own count below, which scans the table.
    const after = await readsOnceReported(
      'app.items',
      (r) => r.indexRowsRead - before.indexRowsRead >= changed && r.indexScans - before.indexScans >= scans + 1,
    );
    // The batches' updates found their rows by ctid. A scan of acme's rows (the statistics
    // take acme for a row or two) or of the whole table would show here. One more index scan:
    // the bulk promotion's look for any row of acme, which stops at the first.
    expect(after.seqScans - before.seqScans).toBe(0);
    expect(after.indexScans - before.indexScans).toBe(scans + 1);
    expect(after.indexRowsRead - before.indexRowsRead).toBeGreaterThanOrEqual(changed);
    expect(after.indexRowsRead - before.indexRowsRead).toBeLessThan(changed * 1.1);

    const { rows: renamed } = await db.pool.query(
      `select count(*)::int as n from app.items where tenant_id = 'acme' and name like 'renamed %'`,
    );
    expect(renamed).toEqual([{ n: changed }]);
  });

  it('looks each pulled row up by a key of two columns, and keeps the target’s rows as before-images', async () => {
    // Made on one connection whose counters are flushed before they are read: building the
    // primary key scans the table (a seq scan in its counters), which must not land, flushed
    // late, in the load's figures.
    const setup = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await setup.query(`
      create table app.parts (
        tenant_id text not null,
        region    text not null,
        id        bigint not null,
        name      text not null,
        primary key (tenant_id, region, id)
      ) with (autovacuum_enabled = false);
      insert into app.parts select 'other', 'eu', g, 'part ' || g from generate_series(1, ${OTHER_ROWS}) g;
      analyze app.parts;
      insert into app.parts select 'acme', r, g, 'part ' || g
      from generate_series(1, ${ACME_ROWS / 2}) g, unnest(array['eu', 'us']) r;
    `);
      await protectTable(setup, 'app.parts');
      await setup.query('select pg_stat_force_next_flush()');
    } finally {
      await setup.end();
    }
    writeFile(
      dir,
      'parts.sql',
      `-- target: app.parts\n-- key: region, id\nselect s.region as region, s.id as id, s.name as name\nfrom staged s\n`,
    );
    const changed = 2_000;
    const lines = ['region,id,name'];
    for (let id = 1; id <= changed / 2; id++) lines.push(`us,${id},renamed ${id}`, `eu,${id},part ${id}`);
    lines.push('us,999999,new part');
    const file = writeFile(dir, 'parts.csv', `${lines.join('\n')}\n`);
    const before = await targetReads('app.parts');
    const result = await loadOnOwnPool({ file, tenant: 'acme', mapping: 'parts', mappingsDir: dir, batchSize: 500 });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ updated: changed / 2, unchanged: changed / 2, inserted: 1 });

    const after = await readsOnceReported('app.parts', (r) => r.indexScans - before.indexScans >= changed + 3);
    expect(after.seqScans - before.seqScans).toBe(0);
    // One a pulled row, and two of the bulk promotion: its look for any row of acme, and its
    // look at the new row's xmin, for the undo log.
    expect(after.indexScans - before.indexScans).toBe(changed + 3);

    const { rows } = await db.pool.query(
      `select region, count(*)::int as n from app.parts
       where tenant_id = 'acme' and (name like 'renamed %' or name = 'new part') group by region order by region`,
    );
    expect(rows).toEqual([{ region: 'us', n: changed / 2 + 1 }]);
    // Rollback puts back what the plan saw: the before-images are the target's rows.
    const { rows: undo } = await db.pool.query(
      `select before from ferry.undo_log($1) where action = 'update' and before ->> 'id' = '1'`,
      [result.loadId],
    );
    expect(undo).toEqual([{ before: { tenant_id: 'acme', region: 'us', id: 1, name: 'part 1' } }]);
  });

  it('runs the batch UPDATE with its own settings, and the rest of the load with the session’s', async () => {
    // What the triggers on row 1 noted during the load of the test above.
    const { rows } = await db.pool.query('select at, seqscan, indexscan from app.settings_seen order by at desc');
    expect(rows).toEqual([
      { at: 'update', seqscan: 'off', indexscan: 'off' },
      { at: 'commit', seqscan: 'on', indexscan: 'on' },
    ]);
  });

  it('plans by key lookups only when the load is small against the target and an index leads with the key', async () => {
    const planned = async (rows: number) => {
      const lines = ['id,name'];
      for (let id = 1; id <= rows; id++) lines.push(`${id},item ${id}`);
      const file = writeFile(dir, `plan-${rows}.csv`, `${lines.join('\n')}\n`);
      const result = await load(db.pool, {
        file,
        tenant: 'acme',
        mapping: 'items',
        mappingsDir: dir,
        keepStaging: true,
      });
      expect(result.status).toBe('succeeded');
      const { rows: answer } = await db.pool.query('select ferry.prefers_key_lookups($1) as by_key', [result.loadId]);
      await db.pool.query('select ferry.cleanup_load($1)', [result.loadId]);
      return answer[0].by_key;
    };
    expect(await planned(1_000)).toBe(true); // 1,000 rows against 130,000
    expect(await planned(20_000)).toBe(false); // 20,000 × 16 > 130,000: one scan of the target costs less

    const keyIndex = async (table: string) => {
      const { rows } = await db.pool.query(`select ferry.has_key_index($1::regclass, '{id}', 'tenant_id') as ok`, [
        table,
      ]);
      return rows[0].ok;
    };
    expect(await keyIndex('app.items')).toBe(true); // primary key (tenant_id, id)
    await db.pool.query(`create table app.loose (tenant_id text not null, id bigint not null, name text)`);
    expect(await keyIndex('app.loose')).toBe(false);
    await db.pool.query(`create index on app.loose (name, id)`);
    expect(await keyIndex('app.loose')).toBe(false); // the key is not its leading column
    await db.pool.query(`create index on app.loose (id) where name is not null`);
    expect(await keyIndex('app.loose')).toBe(false); // partial
    await db.pool.query(`create index on app.loose (id, tenant_id, name)`);
    expect(await keyIndex('app.loose')).toBe(true);
  });
});
