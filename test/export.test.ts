// pgferry export: each format's exact output for a table of awkward values, the options
// (--where, --columns, --query, --gzip, -o, --raw), the CLI, the errors, the audit line, and
// client memory that stays flat. Tenant isolation is tried in export.isolation.test.ts.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';

import ExcelJS from 'exceljs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';

import { listAudit } from '../src/audit.js';
import { PgferryError } from '../src/errors.js';
import { type ExportOptions, exportRows } from '../src/export/export-rows.js';
import { addTenant, protectTable } from '../src/tenants.js';
import { tempDir } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

// At the top level: the database is dropped after the file (an afterAll hook).
const db: TestDatabase = await createTestDatabase();
/** Connections made after the database's time zone was set to UTC. */
let pool: pg.Pool;
let dir: string;

const THINGS_DDL = `
  create table app.things (
    tenant_id text    not null,
    id        integer not null,
    label     text,
    amount    numeric,
    qty       bigint,
    ratio     double precision,
    happened  timestamptz,
    day       date,
    active    boolean,
    tags      jsonb,
    primary key (tenant_id, id)
  )`;

type Row = [
  number,
  string | null,
  string | null,
  string | null,
  string | null,
  string | null,
  string | null,
  boolean | null,
  string | null,
];

// id, label, amount, qty, ratio, happened, day, active, tags
const ACME: Row[] = [
  [
    1,
    'He said "hi", then left',
    '12345678901234567890.123456789',
    '-42',
    '0.1',
    '2024-02-29 13:45:00.123456+00',
    '2024-02-29',
    true,
    '["a", "b"]',
  ],
  [2, '', '-1.50', '9007199254740993', 'NaN', null, null, false, '[]'],
  [
    3,
    'line one\nline two\r\nthree',
    'NaN',
    '0',
    '-Infinity',
    '1999-12-31 23:59:59+00',
    '0001-01-01 BC',
    null,
    '{"k": [1, 2.50], "s": "x\\ny"}',
  ],
  [4, 'Ünïcödé ✓ 日本 😀 <&> tab\there', '0', '9007199254740992', '1e300', null, null, null, null],
  [5, '=HYPERLINK("http://evil.example","x")', null, null, null, null, null, null, null],
  [6, '-5', null, null, null, null, null, null, '"=1+1"'],
  [7, '+1 555 0100', null, null, null, null, null, null, null],
  [8, '@SUM(A1:A2)', null, null, null, null, null, null, null],
  [9, null, null, null, null, null, null, null, null],
];

beforeAll(async () => {
  await db.pool.query(`alter database ${db.name} set timezone = 'UTC'`);
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  pool.on('error', () => {});
  dir = tempDir();
  await pool.query('create schema app');
  await pool.query(THINGS_DDL);
  await addTenant(pool, 'acme');
  await addTenant(pool, 'bob');
  await protectTable(pool, 'app.things');
  for (const row of ACME) {
    await pool.query('insert into app.things values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)', ['acme', ...row]);
  }
  await pool.query(`insert into app.things values ('bob', 1, 'BOBSECRET', 1, 1, 1, null, null, true, '["BOBSECRET"]')`);
  // A table with no rows for acme, and one that is not protected.
  await pool.query('create table app.empty (tenant_id text not null, id integer primary key)');
  await protectTable(pool, 'app.empty');
  await pool.query('create table app.loose (tenant_id text, id integer)');
});

afterAll(async () => {
  await pool?.end();
});

/** Exports into a string (through a stream, as a Node program would). */
async function exportText(options: Omit<ExportOptions, 'output'>): Promise<string> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  await exportRows(pool, { ...options, output: sink });
  return Buffer.concat(chunks).toString('utf8');
}

const acme = { tenant: 'acme', table: 'app.things' } as const;

/** The text of one file inside a zip (an xlsx). */
async function zipEntry(file: string, name: string): Promise<string> {
  const zip = await yauzl.openPromise(file, { lazyEntries: true });
  try {
    const entry = await new Promise<yauzl.Entry>((resolve, reject) => {
      zip.on('entry', (e: yauzl.Entry) => (e.fileName === name ? resolve(e) : zip.readEntry()));
      zip.on('end', () => reject(new Error(`${name} not in ${file}`)));
      zip.on('error', reject);
      zip.readEntry();
    });
    const stream = await zip.openReadStreamPromise(entry);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    zip.close();
  }
}

describe('each format, exactly', () => {
  it('csv: header, RFC 4180 quoting, NULL empty, "" for the empty string, formulas neutralised', async () => {
    expect(await exportText({ ...acme, format: 'csv' })).toBe(
      [
        'id,label,amount,qty,ratio,happened,day,active,tags',
        '1,"He said ""hi"", then left",12345678901234567890.123456789,-42,0.1,2024-02-29 13:45:00.123456+00,2024-02-29,t,"[""a"", ""b""]"',
        '2,"",-1.50,9007199254740993,NaN,,,f,[]',
        '3,"line one\nline two\r\nthree",NaN,0,-Infinity,1999-12-31 23:59:59+00,0001-01-01 BC,,"{""k"": [1, 2.50], ""s"": ""x\\ny""}"',
        '4,Ünïcödé ✓ 日本 😀 <&> tab\there,0,9007199254740992,1e+300,,,,',
        `5,"'=HYPERLINK(""http://evil.example"",""x"")",,,,,,,`,
        '6,-5,,,,,,,"""=1+1"""',
        "7,'+1 555 0100,,,,,,,",
        "8,'@SUM(A1:A2),,,,,,,",
        '9,,,,,,,,',
        '',
      ].join('\n'),
    );
  });

  it('tsv: the same with TAB, quoting fields that hold a TAB, quote, CR or LF', async () => {
    expect(await exportText({ ...acme, format: 'tsv' })).toBe(
      [
        'id\tlabel\tamount\tqty\tratio\thappened\tday\tactive\ttags',
        '1\t"He said ""hi"", then left"\t12345678901234567890.123456789\t-42\t0.1\t2024-02-29 13:45:00.123456+00\t2024-02-29\tt\t"[""a"", ""b""]"',
        '2\t""\t-1.50\t9007199254740993\tNaN\t\t\tf\t[]',
        '3\t"line one\nline two\r\nthree"\tNaN\t0\t-Infinity\t1999-12-31 23:59:59+00\t0001-01-01 BC\t\t"{""k"": [1, 2.50], ""s"": ""x\\ny""}"',
        '4\t"Ünïcödé ✓ 日本 😀 <&> tab\there"\t0\t9007199254740992\t1e+300\t\t\t\t',
        `5\t"'=HYPERLINK(""http://evil.example"",""x"")"\t\t\t\t\t\t\t`,
        '6\t-5\t\t\t\t\t\t\t"""=1+1"""',
        "7\t'+1 555 0100\t\t\t\t\t\t\t",
        "8\t'@SUM(A1:A2)\t\t\t\t\t\t\t",
        '9\t\t\t\t\t\t\t\t',
        '',
      ].join('\n'),
    );
  });

  const OBJECTS = [
    '{"id":1,"label":"He said \\"hi\\", then left","amount":12345678901234567890.123456789,"qty":-42,"ratio":0.1,"happened":"2024-02-29 13:45:00.123456+00","day":"2024-02-29","active":true,"tags":["a", "b"]}',
    '{"id":2,"label":"","amount":-1.50,"qty":9007199254740993,"ratio":"NaN","happened":null,"day":null,"active":false,"tags":[]}',
    '{"id":3,"label":"line one\\nline two\\r\\nthree","amount":"NaN","qty":0,"ratio":"-Infinity","happened":"1999-12-31 23:59:59+00","day":"0001-01-01 BC","active":null,"tags":{"k": [1, 2.50], "s": "x\\ny"}}',
    '{"id":4,"label":"Ünïcödé ✓ 日本 😀 <&> tab\\there","amount":0,"qty":9007199254740992,"ratio":1e+300,"happened":null,"day":null,"active":null,"tags":null}',
    '{"id":5,"label":"=HYPERLINK(\\"http://evil.example\\",\\"x\\")","amount":null,"qty":null,"ratio":null,"happened":null,"day":null,"active":null,"tags":null}',
    '{"id":6,"label":"-5","amount":null,"qty":null,"ratio":null,"happened":null,"day":null,"active":null,"tags":"=1+1"}',
    '{"id":7,"label":"+1 555 0100","amount":null,"qty":null,"ratio":null,"happened":null,"day":null,"active":null,"tags":null}',
    '{"id":8,"label":"@SUM(A1:A2)","amount":null,"qty":null,"ratio":null,"happened":null,"day":null,"active":null,"tags":null}',
    '{"id":9,"label":null,"amount":null,"qty":null,"ratio":null,"happened":null,"day":null,"active":null,"tags":null}',
  ];

  it("json: numbers with the database's exact digits, json embedded, NaN/Infinity as strings, nothing neutralised", async () => {
    const text = await exportText({ ...acme, format: 'json' });
    expect(text).toBe(`[\n${OBJECTS.join(',\n')}\n]\n`);
    const parsed = JSON.parse(text);
    expect(parsed).toHaveLength(9);
    expect(parsed[2].tags).toEqual({ k: [1, 2.5], s: 'x\ny' });
  });

  it('ndjson: one object a line', async () => {
    expect(await exportText({ ...acme, format: 'ndjson' })).toBe(`${OBJECTS.join('\n')}\n`);
  });

  it('json and ndjson of no rows', async () => {
    expect(await exportText({ tenant: 'acme', table: 'app.empty', format: 'json' })).toBe('[\n]\n');
    expect(await exportText({ tenant: 'acme', table: 'app.empty', format: 'ndjson' })).toBe('');
    expect(await exportText({ tenant: 'acme', table: 'app.empty', format: 'csv' })).toBe('id\n');
  });

  it('json: a json column with line breaks stays on one line', async () => {
    const text = await exportText({
      tenant: 'acme',
      query: `select '{\n  "a": "b\\nc"\n}'::json as j`,
      format: 'ndjson',
    });
    expect(text).toBe('{"j":{   "a": "b\\nc" }}\n');
    expect(JSON.parse(text)).toEqual({ j: { a: 'b\nc' } });
  });

  it('xml: one <row> a row, NULL left out, the empty string an empty element, text escaped, CR kept', async () => {
    expect(await exportText({ ...acme, format: 'xml' })).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<export table="app.things">',
        '  <row><id>1</id><label>He said "hi", then left</label><amount>12345678901234567890.123456789</amount><qty>-42</qty><ratio>0.1</ratio><happened>2024-02-29 13:45:00.123456+00</happened><day>2024-02-29</day><active>t</active><tags>["a", "b"]</tags></row>',
        '  <row><id>2</id><label></label><amount>-1.50</amount><qty>9007199254740993</qty><ratio>NaN</ratio><active>f</active><tags>[]</tags></row>',
        '  <row><id>3</id><label>line one\nline two&#13;\nthree</label><amount>NaN</amount><qty>0</qty><ratio>-Infinity</ratio><happened>1999-12-31 23:59:59+00</happened><day>0001-01-01 BC</day><tags>{"k": [1, 2.50], "s": "x\\ny"}</tags></row>',
        '  <row><id>4</id><label>Ünïcödé ✓ 日本 😀 &lt;&amp;&gt; tab\there</label><amount>0</amount><qty>9007199254740992</qty><ratio>1e+300</ratio></row>',
        '  <row><id>5</id><label>=HYPERLINK("http://evil.example","x")</label></row>',
        '  <row><id>6</id><label>-5</label><tags>"=1+1"</tags></row>',
        '  <row><id>7</id><label>+1 555 0100</label></row>',
        '  <row><id>8</id><label>@SUM(A1:A2)</label></row>',
        '  <row><id>9</id></row>',
        '</export>',
        '',
      ].join('\n'),
    );
  });

  it('xml: names that are not XML names are encoded; a query has no table attribute', async () => {
    const text = await exportText({
      tenant: 'acme',
      query: `select 1 as "Item Code", 2 as "2nd", 'x' as "a:b"`,
      format: 'xml',
    });
    expect(text).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<export>\n' +
        '  <row><Item_x0020_Code>1</Item_x0020_Code><_x0032_nd>2</_x0032_nd><a_x003A_b>x</a_x003A_b></row>\n' +
        '</export>\n',
    );
  });

  it('xml: a control character XML 1.0 cannot hold fails the export, naming row and column', async () => {
    const file = path.join(dir, 'control.xml');
    const error = await exportRows(pool, {
      tenant: 'acme',
      query: `select 'fine' as a union all select E'bell \\x07 here'`,
      output: file,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgferryError);
    expect((error as Error).message).toBe(
      'cannot write row 2 as XML: column a holds the character U+0007, which XML 1.0 cannot represent',
    );
    expect(existsSync(file)).toBe(false);
    // TAB, LF and CR are fine.
    expect(await exportText({ tenant: 'acme', query: `select E'a\\tb\\nc\\rd' as a`, format: 'xml' })).toContain(
      '<a>a\tb\nc&#13;d</a>',
    );
  });

  it("sql: INSERTs of up to 500 rows, '' doubling, numbers unquoted, NaN quoted, TRUE/FALSE, NULL", async () => {
    expect(await exportText({ ...acme, format: 'sql' })).toBe(
      [
        '-- pgferry export of app.things for tenant acme',
        'SET standard_conforming_strings = on;',
        'INSERT INTO "app"."things" ("id", "label", "amount", "qty", "ratio", "happened", "day", "active", "tags") VALUES',
        `(1, 'He said "hi", then left', 12345678901234567890.123456789, -42, 0.1, '2024-02-29 13:45:00.123456+00', '2024-02-29', TRUE, '["a", "b"]'),`,
        `(2, '', -1.50, 9007199254740993, 'NaN', NULL, NULL, FALSE, '[]'),`,
        `(3, 'line one\nline two\r\nthree', 'NaN', 0, '-Infinity', '1999-12-31 23:59:59+00', '0001-01-01 BC', NULL, '{"k": [1, 2.50], "s": "x\\ny"}'),`,
        `(4, 'Ünïcödé ✓ 日本 😀 <&> tab\there', 0, 9007199254740992, 1e+300, NULL, NULL, NULL, NULL),`,
        `(5, '=HYPERLINK("http://evil.example","x")', NULL, NULL, NULL, NULL, NULL, NULL, NULL),`,
        `(6, '-5', NULL, NULL, NULL, NULL, NULL, NULL, '"=1+1"'),`,
        `(7, '+1 555 0100', NULL, NULL, NULL, NULL, NULL, NULL, NULL),`,
        `(8, '@SUM(A1:A2)', NULL, NULL, NULL, NULL, NULL, NULL, NULL),`,
        `(9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);`,
        '',
      ].join('\n'),
    );
  });

  it('sql: a new INSERT every 500 rows; a query\'s rows go into "export"; quotes doubled, backslashes kept', async () => {
    const text = await exportText({
      tenant: 'acme',
      query: `select g as n, case when g = 1 then E'O''Brien \\\\ path' end as "We""ird" from generate_series(1, 1001) g`,
      format: 'sql',
    });
    const lines = text.split('\n');
    expect(lines[0]).toBe('-- pgferry export of a query for tenant acme');
    const inserts = lines.filter((l) => l.startsWith('INSERT'));
    expect(inserts).toEqual(Array(3).fill('INSERT INTO "export" ("n", "We""ird") VALUES'));
    expect(lines[3]).toBe(`(1, 'O''Brien \\ path'),`);
    expect(lines[3 + 499]).toBe('(500, NULL);');
    expect(lines[3 + 500]).toBe(inserts[0]);
    expect(lines.at(-2)).toBe('(1001, NULL);');
    expect(lines.at(-1)).toBe('');
  });

  it('sql: the output runs in PostgreSQL and gives back the same rows', async () => {
    const text = await exportText({
      ...acme,
      format: 'sql',
      columns: ['tenant_id', 'id', 'label', 'amount', 'ratio', 'tags'],
    });
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query('create temp table things_copy (like app.things)');
      await client.query(text.replaceAll('"app"."things"', 'things_copy'));
      const { rows } = await client.query(`
        select count(*)::int as n from (
          (select tenant_id, id, label, amount, ratio, tags from things_copy
           except all select tenant_id, id, label, amount, ratio, tags from app.things where tenant_id = 'acme')
          union all
          (select tenant_id, id, label, amount, ratio, tags from app.things where tenant_id = 'acme'
           except all select tenant_id, id, label, amount, ratio, tags from things_copy)) d`);
      expect(rows[0].n).toBe(0);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('xlsx: one sheet named after the table, a bold header, numbers where exact, everything else text', async () => {
    const file = path.join(dir, 'things.xlsx');
    const result = await exportRows(pool, { ...acme, output: file });
    expect(result).toMatchObject({ rows: 9, format: 'xlsx', gzip: false, table: 'app.things' });
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.readFile(file);
    expect(workbook.worksheets.map((s) => s.name)).toEqual(['things']);
    const sheet = workbook.worksheets[0];
    expect(sheet.getRow(1).getCell(1).font?.bold).toBe(true);
    const values = sheet
      .getSheetValues()
      .slice(1)
      .map((r) => (r as unknown[]).slice(1));
    expect(values[0]).toEqual(['id', 'label', 'amount', 'qty', 'ratio', 'happened', 'day', 'active', 'tags']);
    expect(values[1]).toEqual([
      1,
      'He said "hi", then left',
      '12345678901234567890.123456789', // a double would round it
      -42,
      0.1,
      '2024-02-29 13:45:00.123456+00',
      '2024-02-29',
      true,
      '["a", "b"]',
    ]);
    // -1.50 would read back as -1.5; 2^53 + 1 does not fit a double. (exceljs reads the empty
    // string as an empty cell: see below for what the file holds.)
    expect(values[2]).toEqual([2, undefined, '-1.50', '9007199254740993', 'NaN', undefined, undefined, false, '[]']);
    expect(values[3].slice(0, 5)).toEqual([3, 'line one\nline two_x000D_\nthree', 'NaN', 0, '-Infinity']);
    expect(values[4].slice(0, 5)).toEqual([4, 'Ünïcödé ✓ 日本 😀 <&> tab\there', 0, 9007199254740992, 1e300]);
    expect(values.slice(5, 9).map((r) => r[1])).toEqual([
      `'=HYPERLINK("http://evil.example","x")`,
      '-5',
      "'+1 555 0100",
      "'@SUM(A1:A2)",
    ]);
    expect(values[6][8]).toBe('"=1+1"');
    expect(values[9]).toEqual([9]);
    // In the file: the empty string is a text cell holding nothing, NULL no cell at all.
    const xml = await zipEntry(file, 'xl/worksheets/sheet1.xml');
    expect(xml).toMatch(
      /<row r="3"[^>]*><c r="A3"><v>2<\/v><\/c><c r="B3" t="str"><v><\/v><\/c><c r="C3" t="str"><v>-1.50<\/v>/,
    );
    expect(xml).toMatch(/<row r="10"[^>]*><c r="A10"><v>9<\/v><\/c><\/row>/);
  });

  it('xlsx: control characters as OOXML _xHHHH_ escapes, a literal _xHHHH_ escaped too; sheet names made valid', async () => {
    const file = path.join(dir, 'control.xlsx');
    await exportRows(pool, {
      tenant: 'acme',
      query: `select E'bell\\x07 _x0041_ del\\x7f' as "a"`,
      format: 'xlsx',
      output: file,
    });
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.readFile(file);
    expect(workbook.worksheets[0].name).toBe('export');
    expect(workbook.worksheets[0].getCell('A2').value).toBe('bell_x0007_ _x005F_x0041_ del_x007F_');
  });
});

describe('what is exported', () => {
  it('--table leaves out the tenant column and lists rows in primary key order', async () => {
    await pool.query(`insert into app.things (tenant_id, id) values ('acme', 0)`);
    try {
      const rows = (await exportText({ ...acme, format: 'ndjson' }))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(Object.keys(rows[0])).not.toContain('tenant_id');
      expect(rows.map((r) => r.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await pool.query(`delete from app.things where tenant_id = 'acme' and id = 0`);
    }
  });

  it('--columns picks and orders columns, names read as in SQL; the tenant column when named', async () => {
    expect(await exportText({ ...acme, columns: ['qty', 'ID', '"tenant_id"'], where: 'id <= 2' })).toBe(
      'qty,id,tenant_id\n-42,1,acme\n9007199254740993,2,acme\n',
    );
  });

  it('--where filters rows', async () => {
    expect(await exportText({ ...acme, columns: ['id'], where: "label like '%e%' and amount is not null" })).toBe(
      'id\n1\n3\n4\n',
    );
  });

  it('--where may end in a comment', async () => {
    expect(await exportText({ ...acme, columns: ['id'], where: 'id = 1 -- just the first' })).toBe('id\n1\n');
  });

  it('--query exports what the query returns, a trailing ; allowed', async () => {
    expect(
      await exportText({
        tenant: 'acme',
        query:
          'with t as (select id, qty from app.things) select id, qty * 2 as double_qty from t where qty > 0 order by id;',
        format: 'ndjson',
      }),
    ).toBe('{"id":2,"double_qty":18014398509481986}\n{"id":4,"double_qty":18014398509481984}\n');
    expect(await exportText({ tenant: 'acme', query: 'values (1, true), (2, null)', format: 'csv' })).toBe(
      'column1,column2\n1,t\n2,\n',
    );
    expect(await exportText({ tenant: 'acme', query: 'table app.empty', format: 'csv' })).toBe('tenant_id,id\n');
  });

  it('--gzip compresses; -o x.csv.gz implies it', async () => {
    const plain = await exportText({ ...acme, format: 'csv' });
    const zipped = path.join(dir, 'things.csv.gz');
    const result = await exportRows(pool, { ...acme, output: zipped });
    expect(result).toMatchObject({ format: 'csv', gzip: true, rows: 9 });
    expect(gunzipSync(readFileSync(zipped)).toString('utf8')).toBe(plain);

    const explicit = path.join(dir, 'things.json');
    await exportRows(pool, { ...acme, output: explicit, gzip: true });
    expect(gunzipSync(readFileSync(explicit)).toString('utf8')).toBe(await exportText({ ...acme, format: 'json' }));

    const xlsx = path.join(dir, 'things.xlsx.gz');
    await exportRows(pool, { ...acme, output: xlsx });
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.load(gunzipSync(readFileSync(xlsx)) as unknown as ExcelJS.Buffer);
    expect(workbook.worksheets[0].getCell('B2').value).toBe('He said "hi", then left');
  });

  it('-o FILE: the format from the extension (csv when unknown), the file replaced whole', async () => {
    for (const [name, format] of [
      ['a.tsv', 'tsv'],
      ['a.ndjson', 'ndjson'],
      ['a.jsonl', 'ndjson'],
      ['a.xml', 'xml'],
      ['a.SQL', 'sql'],
      ['a.txt', 'csv'],
    ] as const) {
      const file = path.join(dir, name);
      writeFileSync(file, 'old content that is much longer than nothing');
      const result = await exportRows(pool, { tenant: 'acme', table: 'app.empty', output: file });
      expect(result.format, name).toBe(format);
      expect(readFileSync(file, 'utf8'), name).toBe(await exportText({ tenant: 'acme', table: 'app.empty', format }));
    }
    // No temporary files left behind.
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('--raw leaves formula-like text alone in csv and xlsx', async () => {
    const csv = await exportText({ ...acme, columns: ['label'], where: 'id between 5 and 8', raw: true });
    expect(csv).toBe('label\n"=HYPERLINK(""http://evil.example"",""x"")"\n-5\n+1 555 0100\n@SUM(A1:A2)\n');
    const file = path.join(dir, 'raw.xlsx');
    await exportRows(pool, { ...acme, columns: ['label'], where: 'id between 5 and 8', raw: true, output: file });
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.readFile(file);
    expect(workbook.worksheets[0].getColumn(1).values.slice(2)).toEqual([
      '=HYPERLINK("http://evil.example","x")',
      '-5',
      '+1 555 0100',
      '@SUM(A1:A2)',
    ]);
  });

  it('neutralising: =, +, -, @, TAB and CR at the start, but not plain numbers, nor number columns', async () => {
    const text = await exportText({
      tenant: 'acme',
      query: `select v, -1.5 as n from unnest(array['=1', '+x', '-x', '@x', E'\\tx', E'\\rx', '-1.5e3', '+.5', '1-1', 'a=b', '-', '']) v`,
    });
    expect(text).toBe(
      [
        'v,n',
        "'=1,-1.5",
        "'+x,-1.5",
        "'-x,-1.5",
        "'@x,-1.5",
        "'\tx,-1.5",
        `"'\rx",-1.5`,
        '-1.5e3,-1.5',
        '+.5,-1.5',
        '1-1,-1.5',
        'a=b,-1.5',
        "'-,-1.5",
        '"",-1.5',
        '',
      ].join('\n'),
    );
  });

  it('is audited: tenant, table or query, format, rows; a failure too', async () => {
    await exportText({ ...acme, format: 'ndjson', where: 'id < 3' });
    await exportRows(pool, { tenant: 'acme', query: 'select nope', output: new PassThrough() }).catch(() => {});
    const [failed, done] = await listAudit(pool, { tenant: 'acme', limit: 2 });
    expect(done).toMatchObject({
      command: 'export',
      tenant: 'acme',
      outcome: 'exported',
      details: { table: 'app.things', where: 'id < 3', format: 'ndjson', gzip: false, rows: 2 },
    });
    expect(failed).toMatchObject({
      command: 'export',
      tenant: 'acme',
      outcome: 'failed',
      details: {
        query: 'select nope',
        format: 'csv',
        error: 'bad --query: column "nope" does not exist (at character 8 of --query)',
      },
    });
  });

  it('leaves no function behind in the tenant schema, after success or failure', async () => {
    await exportText({ ...acme });
    await exportRows(pool, { tenant: 'acme', query: 'select 1/0', output: new PassThrough() }).catch(() => {});
    const { rows } = await pool.query(
      `select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'ferry_t_acme' and p.proname like 'export%'`,
    );
    expect(rows).toEqual([]);
  });
});

describe('errors: one line naming the problem', () => {
  async function failure(options: Partial<ExportOptions>): Promise<PgferryError> {
    const error = await exportRows(pool, { tenant: 'acme', output: new PassThrough(), ...options }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgferryError);
    expect((error as PgferryError).exitCode).toBe(2);
    return error as PgferryError;
  }

  it('unknown tenant, table, column; a table that is not protected', async () => {
    expect((await failure({ tenant: 'nobody', table: 'app.things' })).message).toBe("unknown tenant 'nobody'");
    expect((await failure({ tenant: 'nobody', query: 'select 1' })).message).toBe("unknown tenant 'nobody'");
    expect((await failure({ table: 'app.nope' })).message).toBe('table app.nope does not exist');
    expect((await failure({ table: 'app.things.x.y' })).message).toBe('table app.things.x.y does not exist');
    const column = await failure({ table: 'app.things', columns: ['id', 'nope'] });
    expect(column.message).toBe('table app.things has no column nope');
    expect(column.hint).toBe('its columns: tenant_id, id, label, amount, qty, ratio, happened, day, active, tags');
    expect((await failure({ table: 'app.things', columns: ['id', 'a b'] })).message).toBe("invalid column name 'a b'");
    expect((await failure({ table: 'app.things', columns: ['id', 'ID'] })).message).toBe('column id is listed twice');
    expect((await failure({ table: 'app.loose' })).message).toBe(
      'table app.loose is not protected: pgferry exports the rows of protected tables only',
    );
  });

  it("bad SQL in --where or --query, with the database's message", async () => {
    expect((await failure({ table: 'app.things', where: 'nope > 1' })).message).toBe(
      'bad --where: column "nope" does not exist (at character 1 of --where)',
    );
    expect((await failure({ table: 'app.things', where: 'id >' })).message).toMatch(/^bad --where: syntax error at/);
    expect((await failure({ query: 'select id frm app.things' })).message).toBe(
      'bad --query: syntax error at or near "app" (at character 15 of --query)',
    );
    expect((await failure({ query: 'select 1 as a, 2 as a' })).message).toBe(
      'bad --query: column "a" specified more than once',
    );
    expect((await failure({ query: 'select 1/0' })).message).toBe('bad --query: division by zero');
  });

  it('a query that is not a single SELECT, VALUES, TABLE or WITH … SELECT', async () => {
    expect((await failure({ query: 'delete from app.things' })).message).toBe(
      '--query must be a single SELECT, VALUES, TABLE or WITH … SELECT statement, not DELETE',
    );
    expect(
      (await failure({ query: '  -- hi\n /* a /* nested */ comment */ (update app.things set id = 1)' })).message,
    ).toBe('--query must be a single SELECT, VALUES, TABLE or WITH … SELECT statement, not UPDATE');
    expect((await failure({ query: '   ' })).message).toBe('--query is empty');
    expect((await failure({ query: 'select 1; select 2' })).message).toMatch(
      /^bad --query: syntax error at or near ";"/,
    );
    expect((await failure({ query: 'with d as (delete from app.things returning *) select * from d' })).message).toBe(
      '--query must not change data: WITH clause containing a data-modifying statement must be at the top level',
    );
  });

  it('bad option combinations and an unknown format', async () => {
    expect((await failure({})).message).toBe('export either a table (--table) or a query (--query)');
    expect((await failure({ table: 'app.things', query: 'select 1' })).message).toBe(
      'export either a table (--table) or a query (--query)',
    );
    expect((await failure({ query: 'select 1', where: 'true' })).message).toBe(
      '--where and --columns go with --table; put them in the --query itself',
    );
    expect((await failure({ table: 'app.things', format: 'yaml' as never })).message).toBe(
      'unknown format "yaml": choose one of csv, tsv, xlsx, json, ndjson, xml, sql',
    );
  });

  it('an output that cannot be written; a failed export leaves an existing file as it was', async () => {
    expect((await failure({ table: 'app.things', output: path.join(dir, 'missing', 'x.csv') })).message).toBe(
      `cannot write ${path.join(dir, 'missing', 'x.csv')}: its folder does not exist`,
    );
    const notAFolder = path.join(dir, 'plain-file');
    writeFileSync(notAFolder, '');
    expect((await failure({ table: 'app.things', output: path.join(notAFolder, 'x.csv') })).message).toBe(
      `cannot write ${path.join(notAFolder, 'x.csv')}: a part of its path is not a folder`,
    );
    expect((await failure({ table: 'app.things', output: dir })).message).toBe(
      `cannot write ${dir}: it is a directory`,
    );

    const kept = path.join(dir, 'kept.csv');
    writeFileSync(kept, 'precious');
    await failure({ query: 'select 1/(3 - g) from generate_series(1, 5) g', output: kept });
    expect(readFileSync(kept, 'utf8')).toBe('precious');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('a failing output', () => {
  it('fails the export with its error (csv and xlsx), and a closed stream fails the next', async () => {
    for (const format of ['csv', 'xlsx'] as const) {
      let writes = 0;
      const failing = new Writable({
        write(_chunk, _encoding, callback) {
          callback(++writes > 2 ? new Error('disk full') : null);
        },
      });
      failing.on('error', () => {});
      const query = 'select g, repeat(md5(g::text), 4) as filler from generate_series(1, 200000) g';
      await expect(exportRows(pool, { tenant: 'acme', query, format, output: failing }), format).rejects.toThrow(
        'disk full',
      );
      await expect(exportRows(pool, { tenant: 'acme', query, format, output: failing }), format).rejects.toThrow(
        'the output stream was closed',
      );
    }
  });
});

describe('the CLI', () => {
  const env = () => ({ DATABASE_URL: db.url });

  it('writes to stdout, csv by default, and nothing else', async () => {
    const run = await runCli(
      ['export', '--tenant', 'acme', '--table', 'app.things', '--columns', 'id,label', '--where', 'id in (1, 5)'],
      { env: env() },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      `id,label\n1,"He said ""hi"", then left"\n5,"'=HYPERLINK(""http://evil.example"",""x"")"\n`,
    );
  });

  it('-o FILE, --format, --raw, --query; says what it wrote', async () => {
    const file = path.join(dir, 'cli.out');
    const run = await runCli(
      [
        'export',
        '-t',
        'acme',
        '--query',
        'select label from app.things where id = 8',
        '--format',
        'tsv',
        '--raw',
        '-o',
        file,
      ],
      { env: env() },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`1 row of the query for tenant acme written to ${file} (tsv)\n`);
    expect(readFileSync(file, 'utf8')).toBe('label\n@SUM(A1:A2)\n');

    const zipped = path.join(dir, 'cli.ndjson.gz');
    const gz = await runCli(['export', '-t', 'acme', '--table', 'app.things', '--columns', 'id', '-o', zipped], {
      env: env(),
    });
    expect(gz.stdout).toBe(`9 rows of app.things for tenant acme written to ${zipped} (ndjson, gzip)\n`);
    expect(gunzipSync(readFileSync(zipped)).toString('utf8')).toBe(
      Array.from({ length: 9 }, (_, i) => `{"id":${i + 1}}\n`).join(''),
    );
  });

  it('errors: one line, exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--tenant', 'nobody', '--table', 'app.things'],
        /^pgferry: unknown tenant 'nobody'\n {2}hint: add it with: pgferry tenant add nobody\n$/,
      ],
      [['--tenant', 'acme', '--table', 'app.nope'], /^pgferry: table app.nope does not exist\n$/],
      [
        ['--tenant', 'acme', '--table', 'app.things', '--columns', 'id,nope'],
        /^pgferry: table app.things has no column nope\n/,
      ],
      [['--tenant', 'acme', '--query', 'select nope'], /^pgferry: bad --query: column "nope" does not exist/],
      [
        ['--tenant', 'acme', '--table', 'app.things', '--where', 'nope'],
        /^pgferry: bad --where: column "nope" does not exist/,
      ],
      [
        ['--tenant', 'acme', '--table', 'app.things', '--format', 'yaml'],
        /argument 'yaml' is invalid. Allowed choices are csv, tsv, xlsx, json, ndjson, xml, sql/,
      ],
      [
        ['--tenant', 'acme', '--table', 'app.things', '-o', '/nonexistent/dir/x.csv'],
        /^pgferry: cannot write \/nonexistent\/dir\/x.csv: its folder does not exist\n$/,
      ],
      [
        ['--tenant', 'acme', '--query', 'drop table app.things'],
        /^pgferry: --query must be a single SELECT, VALUES, TABLE or WITH … SELECT statement, not DROP\n$/,
      ],
      [['--table', 'app.things'], /required option '-t, --tenant <tenant>' not specified/],
    ];
    for (const [args, expected] of cases) {
      const run = await runCli(['export', ...args], { env: env() });
      expect(run.stderr, args.join(' ')).toMatch(expected);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout, args.join(' ')).toBe('');
    }
  });

  it('--help explains formula neutralising', async () => {
    const run = await runCli(['export', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('CSV');
    expect(run.stdout).toMatch(/injection/);
    expect(run.stdout).toMatch(/--raw/);
  });
});

describe('client memory', () => {
  /** Exports `rows` generated rows in a process of its own; its peak RSS in KB. */
  async function measure(rows: number, format: string): Promise<{ rows: number; maxRssKb: number }> {
    // A small heap: V8 then collects early, so RSS shows what the export holds, not GC timing
    // (and an export that held its rows would run out of memory).
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--max-old-space-size=64',
      path.resolve('test/helpers/measure-export.mjs'),
      db.url,
      `select g as id, 'product number ' || g || ', with a comma' as name, g * 1.25 as price, now() as at from generate_series(1, ${rows}) g`,
      format,
      path.join(dir, `memory.${format}`),
    ]);
    return JSON.parse(stdout);
  }

  // Measured: csv 116 MB for 100k rows and for 1M; xlsx 121 MB for 100k, 122 MB for 1M. Before
  // exceljs's own buffers were waited on, an xlsx of 1M rows took 320 MB (without the heap cap).
  it.each([
    ['csv', 1_000_000],
    ['xlsx', 300_000],
  ])(
    'stays flat: %s of %i rows needs no more memory than of 100,000',
    async (format, rows) => {
      const small = await measure(100_000, format);
      const large = await measure(rows, format);
      expect(large.rows).toBe(rows);
      console.log(
        `export ${format} peak RSS: 100k rows ${Math.round(small.maxRssKb / 1024)} MB, ` +
          `${rows / 1000}k rows ${Math.round(large.maxRssKb / 1024)} MB`,
      );
      expect(large.maxRssKb - small.maxRssKb).toBeLessThan(20 * 1024);
    },
    240_000,
  );
});
