import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { rollback } from '../src/rollback.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

// The promotion's one INSERT of the rows that cannot conflict keeps in its undo log the keys
// as the target stores them: read again from the work table where nothing can change a row
// on its way in, from RETURNING where a trigger may.

let db: TestDatabase;
let dir: string;
let mapping: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await db.pool.query(`
    create schema app;
    create table app.codes (tenant_id text not null, code text not null, n integer, primary key (tenant_id, code));`);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.codes');
  mapping = writeFile(
    dir,
    'codes.sql',
    `-- target: app.codes\n-- key: code\nselect s.code as code, s.n as n\nfrom staged s\n`,
  );
});

async function loadAndUndo(csv: string) {
  const result = await load(db.pool, { file: writeFile(dir, 'codes.csv', csv), tenant: 'acme', mapping, force: true });
  expect(result.status).toBe('succeeded');
  const { rows } = await db.pool.query(
    `select k ->> 'code' as code, u.xid = t.xmin::text::bigint as same_xid
     from ferry.undo u cross join ferry.undo_keys(u.key) as k
     left join app.codes t on t.tenant_id = 'acme' and t.code = k ->> 'code'
     where u.load_id = $1 and u.action = 'inserts' order by 1`,
    [result.loadId],
  );
  return { result, undo: rows };
}

describe('the bulk promotion’s undo log', () => {
  it('keeps the keys and the writing transaction of rows inserted as given', async () => {
    expect((await db.pool.query(`select ferry.may_change_inserts('app.codes') as v`)).rows[0].v).toBe(false);
    const { result, undo } = await loadAndUndo('code,n\nA1,1\nB2,2\n');
    expect(result.counts).toMatchObject({ inserted: 2 });
    // Kept a column at a time, not an object a key.
    const { rows: stored } = await db.pool.query(`select key from ferry.undo where load_id = $1`, [result.loadId]);
    expect(stored.map((r) => ({ code: [...r.key.code].sort() }))).toEqual([{ code: ['A1', 'B2'] }]);
    expect(undo).toEqual([
      { code: 'A1', same_xid: true },
      { code: 'B2', same_xid: true },
    ]);
    expect(await rollback(db.pool, result.loadId!)).toMatchObject({ outcome: 'rolled_back', deleted: 2 });
    expect((await db.pool.query('select count(*)::int as n from app.codes')).rows[0].n).toBe(0);
  });

  it('keeps the keys as stored when a trigger changes them on the way in', async () => {
    await db.pool.query(`
      create function app.upper_code() returns trigger language plpgsql as $$
      begin new.code := upper(new.code); return new; end $$;
      create trigger codes_upper before insert on app.codes for each row execute function app.upper_code();`);
    expect((await db.pool.query(`select ferry.may_change_inserts('app.codes') as v`)).rows[0].v).toBe(true);
    const { result, undo } = await loadAndUndo('code,n\na1,1\nb2,2\n');
    expect(undo).toEqual([
      { code: 'A1', same_xid: true },
      { code: 'B2', same_xid: true },
    ]);
    expect(await rollback(db.pool, result.loadId!)).toMatchObject({ outcome: 'rolled_back', deleted: 2 });
    expect((await db.pool.query('select count(*)::int as n from app.codes')).rows[0].n).toBe(0);
  });

  it('reads back a key of two columns, and rolls its rows back', async () => {
    await db.pool.query(`
      create table app.pairs (tenant_id text not null, region text not null, id integer not null, n integer,
                              primary key (tenant_id, region, id));`);
    await protectTable(db.pool, 'app.pairs');
    const pairs = writeFile(
      dir,
      'pairs.sql',
      `-- target: app.pairs\n-- key: region, id\nselect s.region as region, s.id as id, s.n as n\nfrom staged s\n`,
    );
    const result = await load(db.pool, {
      file: writeFile(dir, 'pairs.csv', 'region,id,n\nus,1,1\neu,1,2\nus,2,3\n'),
      tenant: 'acme',
      mapping: pairs,
    });
    expect(result.counts).toMatchObject({ inserted: 3 });
    const { rows } = await db.pool.query(
      `select k ->> 'region' as region, (k ->> 'id')::int as id from ferry.undo_log($1) as u
       cross join jsonb_array_elements(u.key) as k order by 1, 2`,
      [result.loadId],
    );
    expect(rows).toEqual([
      { region: 'eu', id: 1 },
      { region: 'us', id: 1 },
      { region: 'us', id: 2 },
    ]);
    expect(await rollback(db.pool, result.loadId!)).toMatchObject({ outcome: 'rolled_back', deleted: 3 });
    expect((await db.pool.query('select count(*)::int as n from app.pairs')).rows[0].n).toBe(0);
  });
});
