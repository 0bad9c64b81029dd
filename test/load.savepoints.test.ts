import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { rollback } from '../src/rollback.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await db.pool.query(`
    create schema app;
    create table app.suppliers (tenant_id text not null, code text not null, primary key (tenant_id, code));
    insert into app.suppliers values ('acme', 'S1'), ('acme', 'S2');
    create table app.parts (
      tenant_id text not null,
      sku       text not null,
      name      text not null,
      supplier  text,
      primary key (tenant_id, sku),
      unique (tenant_id, name),
      foreign key (tenant_id, supplier) references app.suppliers (tenant_id, code)
    );
    create function app.no_forbidden() returns trigger language plpgsql as $$
    begin
      if new.name = 'forbidden' then raise exception 'name % is not allowed', new.name; end if;
      return new;
    end $$;
    create trigger parts_no_forbidden before insert or update on app.parts
      for each row execute function app.no_forbidden();
  `);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.parts');
  writeFile(
    dir,
    'parts.sql',
    `-- target: app.parts
-- key: sku
select s.sku as sku, s.name as name, nullif(s.supplier, '') as supplier
from staged s
`,
  );
});

function csv(rows: number, special: Record<number, string>): string {
  const lines = ['sku,name,supplier'];
  for (let i = 1; i <= rows; i++) lines.push(special[i] ?? `P${i},part ${i},S1`);
  return `${lines.join('\n')}\n`;
}

describe('promotion under savepoints', () => {
  it('isolates a unique violation in the middle of a batch; every other row is promoted', async () => {
    // Row 60 repeats the name of row 10: the unique (tenant_id, name) index fails its batch.
    const file = writeFile(dir, 'unique.csv', csv(100, { 60: 'P60,part 10,S1' }));
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'parts', mappingsDir: dir, batchSize: 100 });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ staged: 100, inserted: 99, rejected: 1 });
    const { rows } = await db.pool.query(
      `select line, rule, column_name, message from ferry.rejects where load_id = $1`,
      [result.loadId],
    );
    expect(rows).toEqual([
      expect.objectContaining({ line: '61', rule: 'unique', column_name: 'parts_tenant_id_name_key' }),
    ]);
    expect(rows[0].message).toMatch(/duplicate key/);
    const count = await db.pool.query(`select count(*)::int as n from app.parts`);
    expect(count.rows[0].n).toBe(99);
    // The undo log keeps each inserted key once: the failed attempts' went with their savepoints.
    const { rows: undo } = await db.pool.query(
      `select k ->> 'sku' as sku
       from ferry.undo u cross join ferry.undo_keys(u.key) as k
       where u.load_id = $1 and u.action = 'inserts'`,
      [result.loadId],
    );
    const skus = undo.map((r) => r.sku as string);
    expect(skus).toHaveLength(99);
    expect(new Set(skus).size).toBe(99);
    expect(skus).not.toContain('P60');
  });

  it('isolates foreign key violations and trigger errors, several in one batch', async () => {
    await db.pool.query('truncate app.parts');
    const file = writeFile(
      dir,
      'fk.csv',
      csv(50, { 5: 'P5,part 5,NOPE', 17: 'P17,forbidden,S2', 44: 'P44,part 44,GONE' }),
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'parts', mappingsDir: dir, batchSize: 16 });
    expect(result.counts).toMatchObject({ staged: 50, inserted: 47, rejected: 3 });
    const { rows } = await db.pool.query(`select line::int, rule from ferry.rejects where load_id = $1 order by line`, [
      result.loadId,
    ]);
    expect(rows).toEqual([
      { line: 6, rule: 'foreign_key' },
      { line: 18, rule: 'error' },
      { line: 45, rule: 'foreign_key' },
    ]);
  });

  it('keeps the original values of a row rejected while promoting', async () => {
    const { rows } = await db.pool.query(
      `select raw from ferry.rejects where rule = 'foreign_key' order by id desc limit 1`,
    );
    expect(JSON.parse(rows[0].raw)).toEqual({ sku: 'P44', name: 'part 44', supplier: 'GONE' });
  });

  it('rejects, rather than counts as updated, a planned update that did not happen (a trigger skipped it)', async () => {
    await db.pool.query(`
      truncate app.parts;
      create function app.keep_frozen() returns trigger language plpgsql as $$
      begin
        if old.name = 'frozen' then return null; end if;
        return new;
      end $$;
      create trigger parts_keep_frozen before update on app.parts
        for each row execute function app.keep_frozen();`);
    const first = writeFile(dir, 'first.csv', csv(30, { 12: 'P12,frozen,S1' }));
    await load(db.pool, { file: first, tenant: 'acme', mapping: 'parts', mappingsDir: dir });
    // Every row changes supplier: 29 are updated, the trigger silently skips P12.
    const second = writeFile(dir, 'second.csv', csv(30, { 12: 'P12,frozen,S2' }).replaceAll(',S1', ',S2'));
    const result = await load(db.pool, {
      file: second,
      tenant: 'acme',
      mapping: 'parts',
      mappingsDir: dir,
      batchSize: 8,
    });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ staged: 30, updated: 29, rejected: 1 });
    const { rows } = await db.pool.query(`select line::int, rule, message from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rows).toEqual([{ line: 13, rule: 'changed_during_load', message: expect.stringMatching(/app\.parts/) }]);
    const { rows: parts } = await db.pool.query(`select supplier from app.parts where sku = 'P12'`);
    expect(parts).toEqual([{ supplier: 'S1' }]);
    // The undo log keeps each updated row's before-image once, and none of P12: the failed
    // attempts' undo rows went with their savepoints. Rollback puts every supplier back.
    const { rows: undo } = await db.pool.query(
      `select key ->> 'sku' as sku, before ->> 'supplier' as supplier
       from ferry.undo_log($1) where action = 'update'`,
      [result.loadId],
    );
    expect(undo).toHaveLength(29);
    expect(new Set(undo.map((r) => r.sku)).size).toBe(29);
    expect(undo.map((r) => r.sku)).not.toContain('P12');
    expect(undo.every((r) => r.supplier === 'S1')).toBe(true);
    expect(await rollback(db.pool, result.loadId!)).toMatchObject({ outcome: 'rolled_back', restored: 29 });
    const { rows: suppliers } = await db.pool.query(`select distinct supplier from app.parts`);
    expect(suppliers).toEqual([{ supplier: 'S1' }]);
  });

  it('inserts the rows absent from a filled target in one statement, and falls back to batches when it fails', async () => {
    await db.pool.query('truncate app.parts');
    const first = await load(db.pool, {
      file: writeFile(dir, 'twenty.csv', csv(20, {})),
      tenant: 'acme',
      mapping: 'parts',
      mappingsDir: dir,
    });
    expect(first.counts).toMatchObject({ inserted: 20 });
    // 20 rows again (unchanged) and 20 new ones, of which row 30 repeats the name of row 5:
    // the one INSERT of the new rows fails, and the batches isolate row 30.
    const result = await load(db.pool, {
      file: writeFile(dir, 'forty.csv', csv(40, { 30: 'P30,part 5,S1' })),
      tenant: 'acme',
      mapping: 'parts',
      mappingsDir: dir,
      batchSize: 8,
    });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ staged: 40, inserted: 19, unchanged: 20, rejected: 1 });
    const { rows } = await db.pool.query(`select line::int, rule from ferry.rejects where load_id = $1`, [
      result.loadId,
    ]);
    expect(rows).toEqual([{ line: 31, rule: 'unique' }]);
    const { rows: undo } = await db.pool.query(
      `select k ->> 'sku' as sku
       from ferry.undo u cross join ferry.undo_keys(u.key) as k
       where u.load_id = $1 and u.action = 'inserts'`,
      [result.loadId],
    );
    expect(undo.map((r) => r.sku as string).sort()).toEqual(
      Array.from({ length: 20 }, (_, i) => `P${i + 21}`)
        .filter((sku) => sku !== 'P30')
        .sort(),
    );
    expect(await rollback(db.pool, result.loadId!)).toMatchObject({ outcome: 'rolled_back', deleted: 19 });
    const count = await db.pool.query(`select count(*)::int as n from app.parts`);
    expect(count.rows[0].n).toBe(20);
  });
});
