import { beforeEach, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
await db.pool.query(`create schema app`);
await addTenant(db.pool, 'acme');

let dir: string;
let table: string;
let n = 0;

/** A fresh target table per test, so each starts empty. */
beforeEach(async () => {
  dir = tempDir();
  table = `items_${++n}`;
  await db.pool.query(`
    create table app.${table} (
      tenant_id  text not null,
      code       text not null,
      label      text,
      qty        integer,
      changed_at timestamptz,
      primary key (tenant_id, code)
    )`);
  await protectTable(db.pool, `app.${table}`);
});

function mapping(header: Record<string, string>): string {
  const lines = Object.entries({ target: `app.${table}`, key: 'code', ...header }).map(([k, v]) => `-- ${k}: ${v}`);
  return writeFile(
    dir,
    `m_${table}_${Object.values(header).join('_').replace(/\W/g, '')}.sql`,
    `${lines.join('\n')}
select s.code as code, s.label as label, s.qty as qty, s.changed_at as changed_at
from staged s
`,
  );
}

async function run(csv: string, header: Record<string, string> = {}, extra: object = {}) {
  const file = writeFile(dir, `f${Math.random().toString(36).slice(2)}.csv`, csv);
  return load(db.pool, { file, tenant: 'acme', mapping: mapping(header), force: true, ...extra });
}

async function rows() {
  const { rows } = await db.pool.query(`select code, label, qty from app.${table} order by code`);
  return rows;
}

const FIRST = 'code,label,qty,changed_at\nA,apple,1,2026-01-01\nB,banana,2,2026-01-01\n';

describe('on_conflict', () => {
  it('update (default) inserts new keys, updates changed rows, leaves identical rows alone', async () => {
    await run(FIRST);
    const second = await run(
      'code,label,qty,changed_at\nA,apple,1,2026-01-01\nB,BANANA,2,2026-01-02\nC,cherry,3,2026-01-01\n',
    );
    expect(second.counts).toMatchObject({ inserted: 1, updated: 1, unchanged: 1, staged: 3 });
    expect(await rows()).toEqual([
      { code: 'A', label: 'apple', qty: 1 },
      { code: 'B', label: 'BANANA', qty: 2 },
      { code: 'C', label: 'cherry', qty: 3 },
    ]);
  });

  it('an unchanged row is not rewritten (its xmin stays)', async () => {
    await run(FIRST);
    const before = await db.pool.query(`select code, xmin::text from app.${table} order by code`);
    const again = await run(FIRST);
    expect(again.counts).toMatchObject({ unchanged: 2, updated: 0, inserted: 0 });
    const after = await db.pool.query(`select code, xmin::text from app.${table} order by code`);
    expect(after.rows).toEqual(before.rows);
  });

  it('skip keeps existing rows as they are', async () => {
    await run(FIRST, { on_conflict: 'skip' });
    const second = await run('code,label,qty,changed_at\nA,APPLE,9,2026-02-01\nC,cherry,3,2026-01-01\n', {
      on_conflict: 'skip',
    });
    expect(second.counts).toMatchObject({ inserted: 1, updated: 0, unchanged: 1 });
    expect((await rows())[0]).toEqual({ code: 'A', label: 'apple', qty: 1 });
  });

  it('reject makes existing keys rejects with rule conflict', async () => {
    await run(FIRST, { on_conflict: 'reject' });
    const second = await run('code,label,qty,changed_at\nA,APPLE,9,2026-02-01\nC,cherry,3,2026-01-01\n', {
      on_conflict: 'reject',
    });
    expect(second.counts).toMatchObject({ inserted: 1, rejected: 1 });
    expect(second.reasons).toEqual([expect.objectContaining({ rule: 'conflict', count: 1 })]);
    const { rows: rejects } = await db.pool.query(`select line, rule from ferry.rejects where load_id = $1`, [
      second.loadId,
    ]);
    expect(rejects).toEqual([{ line: '2', rule: 'conflict' }]);
    expect((await rows())[0]).toEqual({ code: 'A', label: 'apple', qty: 1 });
  });

  it('newer:<column> updates only rows whose column is newer', async () => {
    await run(FIRST, { on_conflict: 'newer:changed_at' });
    const second = await run('code,label,qty,changed_at\nA,old,9,2025-12-31\nB,new,9,2026-03-01\n', {
      on_conflict: 'newer:changed_at',
    });
    expect(second.counts).toMatchObject({ updated: 1, unchanged: 1 });
    expect(await rows()).toEqual([
      { code: 'A', label: 'apple', qty: 1 },
      { code: 'B', label: 'new', qty: 9 },
    ]);
  });
});

describe('duplicates within a load', () => {
  const DUPS = 'code,label,qty,changed_at\nA,first,1,\nB,only,1,\nA,second,2,\nA,third,3,\n';

  it('last (default) keeps the last line of a key; the others count as duplicates', async () => {
    const result = await run(DUPS);
    expect(result.counts).toMatchObject({ staged: 4, inserted: 2, duplicates: 2, rejected: 0 });
    expect(await rows()).toEqual([
      { code: 'A', label: 'third', qty: 3 },
      { code: 'B', label: 'only', qty: 1 },
    ]);
    const { rows: dups } = await db.pool.query(`select line from ferry.duplicate_lines($1) order by line`, [
      result.loadId,
    ]);
    expect(dups.map((r) => Number(r.line))).toEqual([2, 4]);
  });

  it('first keeps the first line', async () => {
    const result = await run(DUPS, { duplicates: 'first' });
    expect(result.counts).toMatchObject({ inserted: 2, duplicates: 2 });
    expect((await rows())[0]).toEqual({ code: 'A', label: 'first', qty: 1 });
  });

  it('reject rejects every line of a repeated key', async () => {
    const result = await run(DUPS, { duplicates: 'reject' });
    expect(result.counts).toMatchObject({ inserted: 1, duplicates: 0, rejected: 3 });
    expect(await rows()).toEqual([{ code: 'B', label: 'only', qty: 1 }]);
  });
});

describe('undo log', () => {
  it('keeps the keys of inserted rows (arrays of at most 10,000) and the before-images of updated rows', async () => {
    await run(FIRST);
    const second = await run('code,label,qty,changed_at\nA,apple,1,2026-01-01\nB,changed,2,2026-01-01\nC,new,3,\n');
    const third = await run('code,label,qty,changed_at\nD,d,1,\nE,e,2,\nF,f,3,\n', {}, { batchSize: 2 });
    const { rows: batches } = await db.pool.query(
      `select (select jsonb_agg(k) from ferry.undo_keys(u.key) as k) as key
       from ferry.undo as u where load_id = $1 and action = 'inserts'`,
      [third.loadId],
    );
    // The three new rows went in with one statement, not in batches of two (in no set order).
    expect(batches.map((b) => (b.key as { code: string }[]).map((k) => k.code).sort())).toEqual([['D', 'E', 'F']]);
    const { rows: undo } = await db.pool.query(
      `select action, key, before->>'label' as before_label from ferry.undo_log($1) order by action, key->>'code'`,
      [second.loadId],
    );
    expect(undo).toEqual([
      { action: 'inserts', key: [{ code: 'C' }], before_label: null },
      { action: 'update', key: { code: 'B' }, before_label: 'banana' },
    ]);
  });

  it('keeps a batch of updates as one undo row on PostgreSQL 18, a row each before', async () => {
    await run(FIRST);
    const second = await run('code,label,qty,changed_at\nA,a2,1,\nB,b2,2,\nC,c2,3,\n', {}, { batchSize: 2 });
    expect(second.counts).toMatchObject({ updated: 2, inserted: 1 });
    const { rows: version } = await db.pool.query(`select current_setting('server_version_num')::int as v`);
    const { rows: stored } = await db.pool.query(
      `select action, key, before, before_rows is not null as has_rows, row_type
       from ferry.undo where load_id = $1 and action like 'update%' order by key::text`,
      [second.loadId],
    );
    if (version[0].v >= 180000) {
      // A batch of two rows (A and B), as the rows were: keys as an array, rows as text.
      expect(stored).toEqual([
        {
          action: 'updates',
          key: [{ code: 'A' }, { code: 'B' }],
          before: null,
          has_rows: true,
          row_type: expect.stringMatching(/^tenant_id text, code text, label text, qty integer/),
        },
      ]);
    } else {
      expect(stored.map((r) => [r.action, r.key, r.has_rows])).toEqual([
        ['update', { code: 'A' }, false],
        ['update', { code: 'B' }, false],
      ]);
    }
    // Either way the undo log reads as a row per updated row, with its before-image.
    const { rows: log } = await db.pool.query(
      `select key, before->>'label' as label from ferry.undo_log($1) where action = 'update' order by key->>'code'`,
      [second.loadId],
    );
    expect(log).toEqual([
      { key: { code: 'A' }, label: 'apple' },
      { key: { code: 'B' }, label: 'banana' },
    ]);
  });
});

describe('target tables', () => {
  it('a serial column takes its value from its sequence when loaded by a tenant', async () => {
    await db.pool.query(
      `create table app.serials (id serial, tenant_id text not null, code text not null, label text, qty int, changed_at timestamptz, unique (tenant_id, code))`,
    );
    await protectTable(db.pool, 'app.serials');
    const mappingFile = writeFile(
      dir,
      'serials.sql',
      `-- target: app.serials
-- key: code
select s.code as code, s.label as label from staged s
`,
    );
    const file = writeFile(dir, 'serials.csv', 'code,label\nA,a\nB,b\n');
    const result = await load(db.pool, { file, tenant: 'acme', mapping: mappingFile });
    expect(result.status, result.error).toBe('succeeded');
    const { rows } = await db.pool.query('select id, code from app.serials order by id');
    expect(rows).toEqual([
      { id: 1, code: 'A' },
      { id: 2, code: 'B' },
    ]);
  });
});
