import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { readSqlDumpRecords, type SqlDumpReaderOptions } from '../src/sources/file/sql-dump/sql-dump-reader.js';
import { type SourceItem, UNDECODABLE } from '../src/sources/reader-items.js';
import { SourceSyntaxError } from '../src/sources/source-syntax-error.js';

async function* chunked(text: string, size: number): AsyncGenerator<string> {
  for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
}

async function* pieces(parts: string[]): AsyncGenerator<string> {
  for (const part of parts) yield part;
}

type Simple = [number, Record<string, string | null>] | { line: number; rule: string; message: string; raw?: string };

function simple(item: SourceItem): Simple {
  if (item.kind === 'record') return [item.line, Object.fromEntries(item.values as Map<string, string | null>)];
  if (item.kind === 'reject') return { line: item.line, rule: item.rule, message: item.message };
  throw new Error(`unexpected ${item.kind} item`);
}

async function collect(text: AsyncIterable<string>, options?: SqlDumpReaderOptions): Promise<Simple[]> {
  const out: Simple[] = [];
  for await (const item of readSqlDumpRecords(text, options)) out.push(simple(item));
  return out;
}

function read(text: string, options?: SqlDumpReaderOptions, size = 7): Promise<Simple[]> {
  return collect(chunked(text, size), options);
}

function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/sql/${name}`, import.meta.url), 'utf8');
}

/** The items read, and the error thrown if any. */
async function outcome(text: AsyncIterable<string>, options?: SqlDumpReaderOptions): Promise<unknown> {
  const out: unknown[] = [];
  try {
    for await (const item of readSqlDumpRecords(text, options)) out.push(simple(item));
  } catch (error) {
    out.push(error instanceof SourceSyntaxError ? { error: error.message, line: error.line } : String(error));
  }
  return out;
}

describe('readSqlDumpRecords: fixtures', () => {
  it('mysqldump: --table picks a table; columns from its CREATE TABLE; MySQL escapes and hex', async () => {
    const dump = fixture('mysqldump.sql');
    expect(await read(dump, { table: 'products' })).toEqual([
      [
        1,
        {
          id: '1',
          sku: 'A-100',
          name: 'Hammer, 500g',
          price: '12.50',
          in_stock: '1',
          thumb: '\\x89504e47',
          category_id: '1',
        },
      ],
      [
        2,
        {
          id: '2',
          sku: 'B-200',
          name: 'O\'Brien\'s "best" saw\\blade',
          price: '-3.75',
          in_stock: '0',
          thumb: null,
          category_id: '1',
        },
      ],
      [
        3,
        {
          id: '3',
          sku: 'C-300',
          name: 'Line one\nline two\ttabbed',
          price: '1e3',
          in_stock: '1',
          thumb: '\\x474946',
          category_id: '2',
        },
      ],
      [
        4,
        {
          id: '4',
          sku: 'D-400',
          name: '100\\% cotton_ish \x1a',
          price: '0.00',
          in_stock: '1',
          thumb: '',
          category_id: null,
        },
      ],
    ]);
    expect(await read(dump, { table: '`categories`' })).toEqual([
      [1, { id: '1', title: 'Tools' }],
      [2, { id: '2', title: 'Garden & "Outdoor"' }],
    ]);
  });

  it('mysqldump: rows of two tables and no --table is an error naming both', async () => {
    await expect(read(fixture('mysqldump.sql'))).rejects.toThrow(
      'the dump holds rows of several tables (categories, products): choose one with --table',
    );
    await expect(read(fixture('mysqldump.sql'))).rejects.toBeInstanceOf(SourceSyntaxError);
  });

  it('pg_dump --inserts: columns from CREATE TABLE; other statements, functions and meta-commands skipped', async () => {
    const rows = await read(fixture('pg_dump_inserts.sql'));
    const columns = ['id', 'sku', 'Display Name', 'price', 'tags', 'active'];
    const row = (line: number, ...values: (string | null)[]): Simple => [
      line,
      Object.fromEntries(columns.map((c, k) => [c, values[k] ?? null])),
    ];
    expect(rows).toEqual([
      row(1, '1', 'A-100', 'Hammer', '12.50', '{tools,steel}', 'true'),
      row(2, '2', 'B-200', "O'Brien's saw \\ blade", '-3.75', null, 'false'),
      row(3, '3', 'C-300', 'Line one\nline two', '1000', '{}', null),
      row(4, '4', 'D-400', 'tab\there \\ Aé', '0.5', null, 'true'),
    ]);
    expect(await read(fixture('pg_dump_inserts.sql'), { table: 'PUBLIC.Products' })).toEqual(rows);
  });

  it('pg_dump --column-inserts: columns from the column list; --table by name or schema.name', async () => {
    const dump = fixture('pg_dump_column_inserts.sql');
    await expect(read(dump)).rejects.toThrow(
      'the dump holds rows of several tables (app.customers, app.orders): choose one with --table',
    );
    const customers = [
      [1, { id: '1', email: 'ann@example.com', fullName: 'Ann Lee' }],
      [2, { id: '2', email: 'bob@example.com', fullName: null }],
      [3, { id: '3', email: 'cé@example.com', fullName: "Cé 'Quote'" }],
    ];
    expect(await read(dump, { table: 'customers' })).toEqual(customers);
    expect(await read(dump, { table: 'app.customers' })).toEqual(customers);
    expect(await read(dump, { table: '"app"."customers"' })).toEqual(customers);
    const orders = await read(dump, { table: 'ORDERS' });
    expect(orders).toEqual([
      [1, { id: '10', customer_id: '1', total: '99.90', placed_at: '2024-03-01 10:00:00+00' }],
      [2, { id: '11', customer_id: '3', total: '5.00', placed_at: '2024-03-02 11:30:00+00' }],
    ]);
  });

  it('an unknown table, or a quoted name of another case, is an error naming the tables with rows', async () => {
    const dump = fixture('pg_dump_column_inserts.sql');
    for (const table of ['invoices', '"Orders"', 'other.orders']) {
      await expect(read(dump, { table })).rejects.toThrow(
        'holds no INSERT rows of table ' +
          (table === '"Orders"' ? 'Orders' : table) +
          '; it holds rows of: app.customers, app.orders',
      );
    }
  });

  it("tricky strings: '),(' and other SQL inside strings are text", async () => {
    expect(await read(fixture('tricky-strings.sql'), undefined, 3)).toEqual([
      [1, { id: '1', body: '),(' }],
      [2, { id: '2', body: "a'); DROP TABLE notes; --" }],
      [3, { id: '3', body: '/* not a comment */ -- nor this' }],
      [4, { id: '4', body: 'C:\\temp\\new' }],
      [5, { id: '5', body: "it's a \\ and a\nnewline" }],
      [6, { id: '6', body: '$$ not dollar $$' }],
      [7, { id: '7', body: 'two\nlines; (with parens)' }],
      [8, { id: '8', body: "'" }],
      [9, { id: '9', body: '' }],
      [10, { id: '10', body: null }],
    ]);
  });

  it('a truncated dump yields the tuples before the cut, then fails naming the line where the string began', async () => {
    expect(await outcome(chunked(fixture('truncated.sql'), 16))).toEqual([
      [1, { col_1: '1', col_2: 'A-100', col_3: 'Hammer' }],
      [2, { col_1: '2', col_2: 'B-200', col_3: 'Saw' }],
      [3, { col_1: '3', col_2: 'C-300', col_3: 'Drill' }],
      { error: 'the dump ends inside a string that starts on line 9: the file is truncated', line: 9 },
    ]);
    const cutInTuple = "INSERT INTO t VALUES (1, 'a'),\n(2,\n 'b'";
    await expect(read(cutInTuple)).rejects.toMatchObject({ line: 2, message: expect.stringContaining('record 2') });
    await expect(read('INSERT INTO t VALUES (1),\n')).rejects.toThrow(
      'ends inside an INSERT statement that starts on line 1',
    );
    await expect(read('INSERT INTO t VALUES (1)\n/* never closed')).rejects.toThrow('ends inside a comment');
  });
});

describe('readSqlDumpRecords: values', () => {
  it('PostgreSQL strings: doubled quotes, literal backslashes, E-strings, dollar quotes, casts', async () => {
    const dump = [
      'INSERT INTO t (a, b) VALUES',
      "('it''s', 'C:\\dir\\n'),",
      "(E'a\\tb\\nc\\\\d\\'e', e'\\101\\x42\\u00e9\\U0001F600'),",
      "(E'\\xc3\\xa9 caf\\303\\251', $$dollar 'quoted'$$),",
      "($q$a $$ b$q$, '2024-01-02'::date),",
      "('12.50'::numeric(10,2), '{1,2}'::integer[]),",
      '(-1.5e-3, +7), (.5, 1E10), (TRUE, false), (null, NULL);',
    ].join('\n');
    expect(await read(dump, undefined, 5)).toEqual([
      [1, { a: "it's", b: 'C:\\dir\\n' }],
      [2, { a: "a\tb\nc\\d'e", b: 'ABé😀' }],
      [3, { a: 'é café', b: "dollar 'quoted'" }],
      [4, { a: 'a $$ b', b: '2024-01-02' }],
      [5, { a: '12.50', b: '{1,2}' }],
      [6, { a: '-1.5e-3', b: '+7' }],
      [7, { a: '.5', b: '1E10' }],
      [8, { a: 'true', b: 'false' }],
      [9, { a: null, b: null }],
    ]);
  });

  it('PostgreSQL with standard_conforming_strings off: backslashes escape in plain strings', async () => {
    const dump = "SET standard_conforming_strings = off;\nINSERT INTO t (a) VALUES ('x\\'y\\\\z\\n');";
    expect(await read(dump)).toEqual([[1, { a: "x'y\\z\n" }]]);
  });

  it('MySQL strings: every backslash escape, doubled quotes, double-quoted strings, hex, bits, introducers', async () => {
    const dump = [
      '/*!40101 SET NAMES utf8mb4 */;',
      "INSERT INTO `t` (`a`, `b`) VALUES ('\\0\\'\\\"\\b\\n\\r\\t\\Z\\\\', '\\%\\_\\q''x'),",
      "(\"dq \\\"x\\\"\", X'0aFF'), (0xDEADbeef, b'0101'), (_utf8mb4'ü', _binary 'é'), (0b11, x''); # done",
    ].join('\n');
    expect(await read(dump, undefined, 4)).toEqual([
      [1, { a: '\0\'"\b\n\r\t\x1a\\', b: "\\%\\_q'x" }],
      [2, { a: 'dq "x"', b: '\\x0aff' }],
      [3, { a: '\\xdeadbeef', b: '0101' }],
      [4, { a: 'ü', b: '\\xc3a9' }],
      [5, { a: '11', b: '\\x' }],
    ]);
  });
});

describe('readSqlDumpRecords: columns and rejects', () => {
  it('without a column list or CREATE TABLE, columns are col_1…col_N, N from the first tuple', async () => {
    expect(await read("INSERT INTO t VALUES (1, 'a'), (2, 'b', 'extra'), (3, NULL);")).toEqual([
      [1, { col_1: '1', col_2: 'a' }],
      { line: 2, rule: 'column_count', message: 'record 2 (line 1): 3 values, but the first tuple has 2 columns' },
      [3, { col_1: '3', col_2: null }],
    ]);
  });

  it('CREATE TABLE gives the names of its column definitions, not of its keys and constraints', async () => {
    const dump = [
      'CREATE TABLE IF NOT EXISTS public."Items" (',
      '    id integer NOT NULL,',
      '    "Weird, name" text DEFAULT \'a, b)\',',
      '    price numeric(10,2) CHECK (price > 0),',
      '    CONSTRAINT items_pk PRIMARY KEY (id),',
      '    UNIQUE (price),',
      '    FOREIGN KEY (id) REFERENCES other (id)',
      ');',
      'CREATE TABLE public.other (x int);',
      'INSERT INTO public."Items" VALUES (1, \'w\', 2.5);',
      'INSERT INTO public."Items" VALUES (2, \'w\');',
    ].join('\n');
    expect(await read(dump)).toEqual([
      [1, { id: '1', 'Weird, name': 'w', price: '2.5' }],
      {
        line: 2,
        rule: 'column_count',
        message: 'record 2 (line 11): 2 values, but CREATE TABLE public.Items has 3 columns',
      },
    ]);
  });

  it('a value that is not a literal rejects its tuple, and reading goes on', async () => {
    const dump = [
      'INSERT INTO t (a, b) VALUES',
      "(1, 'ok'),",
      '(2, now()),',
      "(1+1, 'x'),",
      "(DEFAULT, 'y'),",
      "(3, ARRAY['a', 'b']),",
      "(4, 'last');",
    ].join('\n');
    const items = await read(dump);
    expect(items).toEqual([
      [1, { a: '1', b: 'ok' }],
      expect.objectContaining({
        line: 2,
        rule: 'not_a_literal',
        message: expect.stringMatching(/^record 2 \(line 3\): `now\(\)` is not a literal/),
      }),
      expect.objectContaining({ line: 3, rule: 'not_a_literal', message: expect.stringContaining('`1+1`') }),
      expect.objectContaining({ line: 4, rule: 'not_a_literal', message: expect.stringContaining('`DEFAULT`') }),
      expect.objectContaining({
        line: 5,
        rule: 'not_a_literal',
        message: expect.stringContaining("`ARRAY['a', 'b']`"),
      }),
      [6, { a: '4', b: 'last' }],
    ]);
    const raws: string[] = [];
    for await (const item of readSqlDumpRecords(chunked(dump, 3))) if (item.kind === 'reject') raws.push(item.raw);
    expect(raws[0]).toBe('(2, now())');
  });

  it('a tuple holding bytes not valid in the encoding is rejected with rule encoding', async () => {
    const dump = `INSERT INTO t (a) VALUES ('ok'), ('bad ${UNDECODABLE} byte'), (E'\\xff'), ('fine');`;
    const items: SourceItem[] = [];
    for await (const item of readSqlDumpRecords(chunked(dump, 4))) items.push(item);
    expect(items.map(simple)).toEqual([
      [1, { a: 'ok' }],
      expect.objectContaining({ line: 2, rule: 'encoding' }),
      expect.objectContaining({ line: 3, rule: 'encoding' }),
      [4, { a: 'fine' }],
    ]);
    expect(items[1]).toMatchObject({ raw: "('bad \uFFFD byte')" });
  });

  it('a long tuple is cut to MAX_REJECT_RAW_CHARS in the reject', async () => {
    const long = 'x'.repeat(100_000);
    const items: SourceItem[] = [];
    for await (const item of readSqlDumpRecords(pieces([`INSERT INTO t (a) VALUES ('${long}', now());`]))) {
      items.push(item);
    }
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ kind: 'reject', rule: 'not_a_literal' });
    expect((items[0] as { raw: string }).raw).toHaveLength(64 * 1024);
  });
});

describe('readSqlDumpRecords: statements and tables', () => {
  const copyDump = [
    'SET standard_conforming_strings = on;',
    'COPY public.audit (id, note) FROM stdin;',
    "1\tINSERT INTO public.items VALUES ('not', 'a row');",
    "2\tit's; (unbalanced",
    '\\.',
    '',
    "INSERT INTO public.items (id, name) VALUES (1, 'real');",
  ].join('\n');

  it('COPY … FROM stdin data blocks are skipped, not tokenized', async () => {
    expect(await read(copyDump)).toEqual([[1, { id: '1', name: 'real' }]]);
    expect(await read(copyDump, { table: 'items' }, 1)).toEqual([[1, { id: '1', name: 'real' }]]);
  });

  it('a table whose rows are only COPY data is an error telling to dump with --inserts', async () => {
    await expect(read(copyDump, { table: 'audit' })).rejects.toThrow(
      'the dump holds the rows of table audit only as COPY … FROM stdin data, which pgferry does not read: dump it with `pg_dump --inserts`',
    );
    await expect(read(copyDump.split('\nINSERT')[0] as string)).rejects.toThrow(
      'the dump holds its rows as COPY … FROM stdin data (public.audit), which pgferry does not read: dump it with `pg_dump --inserts`',
    );
    await expect(read('CREATE TABLE t (a int);\n-- nothing else\n')).rejects.toThrow(
      'the dump holds no INSERT … VALUES rows',
    );
  });

  it("reads pgferry's own export", async () => {
    const dump = [
      '-- pgferry export of app.products for tenant acme',
      'SET standard_conforming_strings = on;',
      'INSERT INTO "app"."products" ("sku", "name") VALUES',
      "('A1', 'x'),",
      "('B2', NULL);",
      '',
    ].join('\n');
    expect(await read(dump, { table: 'app.products' })).toEqual([
      [1, { sku: 'A1', name: 'x' }],
      [2, { sku: 'B2', name: null }],
    ]);
  });

  it('skips ON DUPLICATE KEY / ON CONFLICT tails, INSERT … SELECT, other tables and stray semicolons', async () => {
    const dump = [
      "INSERT IGNORE INTO `t` (`a`) VALUES ('1') ON DUPLICATE KEY UPDATE a = VALUES(a);;",
      "REPLACE INTO t (a) VALUES ('2');",
      "INSERT INTO t (a) SELECT 'x' FROM dual;",
      "INSERT INTO other (a) VALUES ('skip me'), ('and me; really');",
      "INSERT INTO t (a) VALUES ('3') ON CONFLICT (a) DO NOTHING;",
    ].join('\n');
    expect(await read(dump, { table: 't' })).toEqual([
      [1, { a: '1' }],
      [2, { a: '2' }],
      [3, { a: '3' }],
    ]);
  });

  it('a statement that is not an INSERT with tuples where they belong is an error naming the line', async () => {
    await expect(read('INSERT INTO t VALUES\n  1, 2;')).rejects.toMatchObject({
      message: 'line 2, column 3: expected "(" to start a tuple of the INSERT into t',
      line: 2,
      column: 3,
    });
    await expect(read('INSERT INTO t VALUES (1) (2);')).rejects.toThrow('expected "," or ";" after a tuple');
  });
});

describe('readSqlDumpRecords: streaming', () => {
  const small = [
    '-- MySQL dump 10.13',
    '/*!40101 SET NAMES utf8mb4 */;',
    'CREATE TABLE `t` (`id` int, `s` text, KEY `k` (`s`(10))) ENGINE=InnoDB;',
    "INSERT INTO `t` VALUES (1,'a\\'b'),(2,'),('),(3,0x0A),(-4.5e2,NULL),(5,now()),(6,'x''y');",
    '# a comment; with (parens)',
    "INSERT INTO `t` VALUES (7,_binary 'z'),(8,'\\\\');",
  ].join('\n');
  const pg = [
    'SET standard_conforming_strings = on;',
    'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;',
    'COPY t2 (a) FROM stdin;',
    'x\ty',
    '\\.',
    "INSERT INTO public.t VALUES (1, E'a\\nb', '{\"x\":1}'::jsonb), (2, 'c''d', NULL) /* c */, (3, $$e$$, 1e5);",
    "INSERT INTO public.t VALUES (4, 'f', true);",
  ].join('\n');

  const mysqlItems = [
    [1, { id: '1', s: "a'b" }],
    [2, { id: '2', s: '),(' }],
    [3, { id: '3', s: '\\x0a' }],
    [4, { id: '-4.5e2', s: null }],
    expect.objectContaining({ line: 5, rule: 'not_a_literal' }),
    [6, { id: '6', s: "x'y" }],
    [7, { id: '7', s: '\\x7a' }],
    [8, { id: '8', s: '\\' }],
  ];
  const pgItems = [
    [1, { col_1: '1', col_2: 'a\nb', col_3: '{"x":1}' }],
    [2, { col_1: '2', col_2: "c'd", col_3: null }],
    [3, { col_1: '3', col_2: 'e', col_3: '1e5' }],
    [4, { col_1: '4', col_2: 'f', col_3: 'true' }],
  ];

  for (const [name, dump, expected] of [
    ['MySQL', small, mysqlItems],
    ['PostgreSQL', pg, pgItems],
  ] as const) {
    it(`${name}: every chunk split position gives the same items`, async () => {
      const whole = await outcome(pieces([dump]));
      expect(whole).toEqual(expected);
      for (let cut = 1; cut < dump.length; cut++) {
        expect(await outcome(pieces([dump.slice(0, cut), dump.slice(cut)])), `cut at ${cut}`).toEqual(whole);
      }
      for (const size of [1, 2, 3, 5, 8, 13]) expect(await outcome(chunked(dump, size))).toEqual(whole);
    });
  }

  it('every fixture reads the same one character at a time as in one piece', async () => {
    const cases: [string, SqlDumpReaderOptions | undefined][] = [
      ['mysqldump.sql', { table: 'products' }],
      ['mysqldump.sql', undefined],
      ['pg_dump_inserts.sql', undefined],
      ['pg_dump_column_inserts.sql', { table: 'app.customers' }],
      ['tricky-strings.sql', undefined],
      ['truncated.sql', undefined],
    ];
    for (const [name, options] of cases) {
      const text = fixture(name);
      // Without its `-- MySQL dump` header, `/*!` still tells the dialect.
      const headless = name === 'mysqldump.sql' ? text.replace(/^-- MySQL dump.*\n/, '') : text;
      const whole = await outcome(pieces([text]), options);
      expect(await outcome(chunked(text, 1), options), name).toEqual(whole);
      const headlessWhole = options === undefined ? await outcome(pieces([headless])) : whole;
      expect(await outcome(chunked(headless, 1), options), name).toEqual(headlessWhole);
    }
  });

  it('reads a 200,000-tuple dump in one INSERT, in linear time', async () => {
    const n = 200_000;
    async function* dump(): AsyncGenerator<string> {
      yield '-- MySQL dump 10.13\nCREATE TABLE `big` (`id` int, `name` varchar(40), `price` decimal(8,2)) ENGINE=InnoDB;\n';
      yield 'INSERT INTO `big` VALUES ';
      let chunk = '';
      for (let i = 1; i <= n; i++) {
        chunk += `${i > 1 ? ',' : ''}(${i},'item \\'${i}\\', (x)',${i}.25)`;
        if (chunk.length > 60_000) {
          yield chunk;
          chunk = '';
        }
      }
      yield `${chunk};\n`;
    }
    const started = Date.now();
    let count = 0;
    let last: SourceItem | undefined;
    for await (const item of readSqlDumpRecords(dump())) {
      count++;
      last = item;
    }
    expect(count).toBe(n);
    expect(last).toEqual({
      kind: 'record',
      line: n,
      values: new Map([
        ['id', String(n)],
        ['name', `item '${n}', (x)`],
        ['price', `${n}.25`],
      ]),
    });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
