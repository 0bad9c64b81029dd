import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

// The transform tries steps 1 to 4 in one pass, straight into the work table; anything that
// pass cannot judge exactly (a value of the wrong type, a line the mapping dropped or
// multiplied) fails it, and the exact steps run instead, through the mapped table. Which of
// the two ran shows in the mapped table the load keeps (keepStaging): empty, or one row a line.

let db: TestDatabase;
let dir: string;
let schema: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await db.pool.query(`
    create schema app;
    create table app.items (
      tenant_id text not null,
      code      varchar(4) not null,
      label     varchar(5),
      qty       integer not null,
      primary key (tenant_id, code)
    );`);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.items');
  schema = (await db.pool.query(`select schema_name from ferry.tenants where slug = 'acme'`)).rows[0].schema_name;
});

async function run(
  name: string,
  csv: string,
  select = 'select s.code as code, s.label as label, s.qty as qty\nfrom staged s',
) {
  const mapping = writeFile(dir, `${name}.sql`, `-- target: app.items\n-- key: code\n${select}\n`);
  const result = await load(db.pool, {
    file: writeFile(dir, `${name}.csv`, csv),
    tenant: 'acme',
    mapping,
    keepStaging: true,
    force: true,
  });
  const { rows: mapped } = await db.pool.query(`select count(*)::int as n from ${schema}.mapped_${result.loadId}`);
  const { rows: rejects } = await db.pool.query(
    `select line::int, column_name, rule from ferry.rejects where load_id = $1 order by line, column_name`,
    [result.loadId],
  );
  await db.pool.query('select ferry.cleanup_load($1)', [result.loadId]);
  await db.pool.query('truncate app.items');
  return { result, mapped: mapped[0].n as number, rejects };
}

describe('the optimistic transform', () => {
  it('takes a clean file in one pass; a missing key or NOT NULL value is still rejected', async () => {
    const { result, mapped, rejects } = await run('clean', 'code,label,qty\nA1,ab,1\n,cd,2\nA3,ef,\nA4,,4\n');
    expect(mapped).toBe(0);
    expect(result.counts).toMatchObject({ staged: 4, inserted: 2, rejected: 2 });
    expect(rejects).toEqual([
      { line: 3, column_name: 'code', rule: 'missing_key' },
      { line: 4, column_name: 'qty', rule: 'not_null' },
    ]);
    expect(result.status).toBe('succeeded');
  });

  it('falls back to the exact steps for a value of the wrong type', async () => {
    const { result, mapped, rejects } = await run('type', 'code,label,qty\nA1,ab,1\nA2,cd,two\n');
    expect(mapped).toBe(2);
    expect(rejects).toEqual([{ line: 3, column_name: 'qty', rule: 'type' }]);
    expect(result.counts).toMatchObject({ staged: 2, inserted: 1, rejected: 1 });
  });

  it('falls back for a string too long for its varchar(n), which a cast would cut', async () => {
    const { result, mapped, rejects } = await run('long', 'code,label,qty\nA1,abcdefgh,1\nA2,cd,2\n');
    expect(mapped).toBe(2);
    expect(rejects).toEqual([{ line: 2, column_name: 'label', rule: 'type' }]);
    expect(result.counts).toMatchObject({ staged: 2, inserted: 1, rejected: 1 });
    const long = await run('longkey', 'code,label,qty\nTOOLONG,ab,1\nA2,cd,2\n');
    expect(long.mapped).toBe(2);
    expect(long.rejects).toEqual([{ line: 2, column_name: 'code', rule: 'type' }]);
  });

  it('falls back for a line the mapping multiplied, and for one it dropped', async () => {
    const fanout = await run(
      'fanout',
      'code,label,qty\nA1,ab,1\nA2,cd,2\n',
      `select s.code || n as code, s.label as label, s.qty as qty
from staged s cross join generate_series(1, case when s.code = 'A2' then 2 else 1 end) as n`,
    );
    expect(fanout.mapped).toBe(3);
    expect(fanout.rejects).toEqual([{ line: 3, column_name: null, rule: 'fanout' }]);
    expect(fanout.result.counts).toMatchObject({ staged: 2, inserted: 1, rejected: 1 });
    const filtered = await run(
      'filtered',
      'code,label,qty\nA1,ab,1\nA2,cd,2\n',
      `select s.code as code, s.label as label, s.qty as qty
from staged s where s.code <> 'A1'`,
    );
    expect(filtered.mapped).toBe(1);
    expect(filtered.rejects).toEqual([{ line: 2, column_name: null, rule: 'filtered' }]);
    expect(filtered.result.counts).toMatchObject({ staged: 2, inserted: 1, rejected: 1 });
  });
});
