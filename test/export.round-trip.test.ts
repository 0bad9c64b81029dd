// Whatever `export` writes, `load` reads back with no options: every format, exported from one
// tenant and loaded into another, gives identical rows (EXCEPT ALL both ways).
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { EXPORT_FORMATS } from '../src/export/export-format.js';
import { exportRows } from '../src/export/export-rows.js';
import { load } from '../src/load/load.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { int, pick, prng } from './helpers/prng.js';
import { rowsDifferingFrom } from './helpers/tenant-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
let dir: string;
let mapping: string;

const COLUMNS = [
  'sku',
  '"Item Code"',
  'name',
  'note',
  'price',
  'qty',
  'big',
  'ratio',
  'active',
  'born',
  'seen',
  'tags',
  'blob',
];

/** Values that break naive writers and readers: quoting, line breaks, markup, escapes, Unicode. */
const AWKWARD_TEXT = [
  'plain',
  'comma, "quoted" and \'single\'',
  'two\nlines',
  'crlf\r\nline',
  'tab\there',
  '  padded  ',
  "'),('",
  '</row><row>',
  '<![CDATA[x]]> & &amp;',
  '_x0020_ literal',
  'back\\slash \\N \\\\',
  'emoji 😀 and ünïcödé',
  '=1+1',
  '@SUM(A1)',
  '-dash',
  '+plus',
  '',
];

beforeAll(async () => {
  dir = tempDir();
  await db.pool.query('create schema app');
  await db.pool.query(`
    create table app.items (
      tenant_id   text not null,
      sku         text not null,
      "Item Code" text,
      name        text not null,
      note        text,
      price       numeric(14,3),
      qty         integer,
      big         bigint,
      ratio       double precision,
      active      boolean,
      born        date,
      seen        timestamptz,
      tags        jsonb,
      blob        bytea,
      primary key (tenant_id, sku)
    )`);
  await addTenant(db.pool, 'acme');
  await protectTable(db.pool, 'app.items');
  const rand = prng(42);
  const rows: unknown[][] = [];
  for (let i = 0; i < 60; i++) {
    const text = AWKWARD_TEXT[i % AWKWARD_TEXT.length];
    rows.push([
      `SKU-${i}`,
      i % 7 === 0 ? null : `code ${i}`,
      text === '' ? 'nonempty' : text,
      i % 5 === 0 ? null : pick(rand, AWKWARD_TEXT),
      i % 9 === 0 ? null : ((int(rand, 2_000_000) - 1_000_000) / 1000).toFixed(3),
      i % 11 === 0 ? null : int(rand, 20_000) - 10_000,
      ['9007199254740993', '-9223372036854775808', '0', null][i % 4],
      ['0.1', '1e-300', '-2.5', 'NaN', '123456789.123456789', null][i % 6],
      [true, false, null][i % 3],
      i % 8 === 0 ? null : `20${10 + (i % 20)}-0${1 + (i % 9)}-1${i % 10}`,
      i % 10 === 0 ? null : `2026-11-21 12:${10 + (i % 50)}:05.${123456 + i}+00`,
      // Not a bare JSON string or null: a JSON file cannot tell those from text and NULL.
      [null, '[]', '["a", 1, null]', '{"k": {"n": [1, 2]}, "s": "x"}', '{}', '12.50'][i % 6],
      i % 4 === 0 ? null : Buffer.from([0, 1, 2, 255, i]),
    ]);
  }
  for (const row of rows) {
    await db.pool.query(
      `insert into app.items (tenant_id, ${COLUMNS.join(', ')})
       values ('acme', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      row,
    );
  }
  mapping = writeFile(
    dir,
    'items.sql',
    `-- target: app.items
-- key: sku
select ${COLUMNS.map((c) => `s.${c} as ${c}`).join(', ')}
from staged s
`,
  );
});

describe('export, then load into another tenant', () => {
  it.each(EXPORT_FORMATS.flatMap((format) => [[format, false] as const, [format, true] as const]))(
    '%s (gzip: %s): identical rows',
    async (format, gzip) => {
      const tenant = `rt_${format}${gzip ? '_gz' : ''}`;
      await addTenant(db.pool, tenant);
      const file = path.join(dir, `items-${tenant}.${format}${gzip ? '.gz' : ''}`);
      // --raw: a neutralised cell (a leading ') is a different value by design; see below.
      const exported = await exportRows(db.pool, { tenant: 'acme', table: 'app.items', output: file, raw: true });
      expect(exported).toMatchObject({ rows: 60, format, gzip });

      const result = await load(db.pool, { file, tenant, mapping });
      expect(result.error).toBeUndefined();
      expect(result.status).toBe('succeeded');
      expect(result.source).toMatchObject({ format: format === 'tsv' ? 'csv' : format });
      expect(result.counts).toMatchObject({ read: 60, inserted: 60, unparseable: 0, rejected: 0 });
      expect(await rowsDifferingFrom(db.pool, 'app.items', COLUMNS, tenant, 'acme')).toBe(0);
    },
  );

  it('a neutralised CSV loads back too, its formula-like text keeping the leading quote', async () => {
    await addTenant(db.pool, 'rt_neutral');
    const file = path.join(dir, 'items-neutral.csv');
    await exportRows(db.pool, { tenant: 'acme', table: 'app.items', output: file });
    const result = await load(db.pool, { file, tenant: 'rt_neutral', mapping });
    expect(result.counts).toMatchObject({ read: 60, inserted: 60 });
    const { rows } = await db.pool.query<{ name: string; original: string }>(
      `select n.name, a.name as original
       from app.items n join app.items a on a.sku = n.sku and a.tenant_id = 'acme'
       where n.tenant_id = 'rt_neutral' and n.name is distinct from a.name
       order by n.name`,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.original).toMatch(/^[=+\-@]/);
      expect(row.name).toBe(`'${row.original}`);
    }
  });
});
