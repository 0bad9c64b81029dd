import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
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
    create table app.typed (
      tenant_id text not null,
      id        integer not null,
      code      varchar(5),
      amount    numeric(6,2),
      day       date,
      active    boolean,
      tags      text[],
      note      text,
      primary key (tenant_id, id)
    )`);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.typed');
  writeFile(
    dir,
    'typed.sql',
    `-- target: app.typed
-- key: id
select s.id as id, s.code as code, s.amount as amount, s.day as day, s.active as active,
       s.tags as tags, s.note as note
from staged s
`,
  );
});

describe('values are checked against the target column types', () => {
  it('rejects each bad value with its line, column, value and the type error; loads the rest', async () => {
    const file = writeFile(
      dir,
      'typed.csv',
      [
        'id,code,amount,day,active,tags,note',
        '1,ab,12.50,2026-01-31,true,"{a,b}",fine',
        '2,toolong,1,2026-01-01,false,{},code too long',
        '3,x,12345.67,2026-01-01,true,{},"amount overflows numeric(6,2)"',
        '4,x,1,2026-02-30,true,{},no such day',
        '5,x,1,2026-01-01,maybe,{},not a boolean',
        '6,x,1,2026-01-01,true,"{unclosed",bad array',
        'seven,x,1,2026-01-01,true,{},id not an integer',
        ',x,1,2026-01-01,true,{},empty key',
        '9,,,,,,"empty values are NULL for non-text targets"',
        '10,x,1,2026-01-01,true,{},""',
      ].join('\n'),
    );
    const result = await load(db.pool, { file, tenant: 'acme', mapping: 'typed', mappingsDir: dir });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 10, staged: 10, inserted: 3, rejected: 7 });
    const { rows } = await db.pool.query(
      `select line::int, column_name, value, rule, message from ferry.rejects where load_id = $1 order by line`,
      [result.loadId],
    );
    expect(rows.map((r) => [r.line, r.column_name, r.value, r.rule])).toEqual([
      [3, 'code', 'toolong', 'type'],
      [4, 'amount', '12345.67', 'type'],
      [5, 'day', '2026-02-30', 'type'],
      [6, 'active', 'maybe', 'type'],
      [7, 'tags', '{unclosed', 'type'],
      [8, 'id', 'seven', 'type'],
      [9, 'id', null, 'missing_key'],
    ]);
    expect(rows[0].message).toMatch(/too long for type character varying\(5\)/);
    expect(rows[1].message).toMatch(/numeric field overflow/);
    const loaded = await db.pool.query(
      'select id, code, amount, day::text, active, tags, note from app.typed order by id',
    );
    expect(loaded.rows).toEqual([
      { id: 1, code: 'ab', amount: '12.50', day: '2026-01-31', active: true, tags: ['a', 'b'], note: 'fine' },
      {
        id: 9,
        code: null,
        amount: null,
        day: null,
        active: null,
        tags: null,
        note: 'empty values are NULL for non-text targets',
      },
      { id: 10, code: 'x', amount: '1.00', day: '2026-01-01', active: true, tags: [], note: '' },
    ]);
  });
});
