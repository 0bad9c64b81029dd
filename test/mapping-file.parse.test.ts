import { createHash } from 'node:crypto';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { PgferryError } from '../src/errors.js';
import { locateInMapping, type Mapping, parseMapping, readMapping } from '../src/mappings/mapping-file.js';
import { tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const FILE = 'mappings/products.sql';

const SELECT = `select
  upper(s."Item Code") as sku,
  s.name as name
from staged s`;

/** A mapping text from header lines and a body. */
function mapping(header: string[], body = SELECT): string {
  return `${header.join('\n')}\n${body}\n`;
}

const BASE = ['-- target: app.products', '-- key: sku'];

/** The PgferryError parseMapping throws. */
function problemsOf(text: string, file = FILE): PgferryError {
  try {
    parseMapping(text, file);
  } catch (error) {
    expect(error).toBeInstanceOf(PgferryError);
    return error as PgferryError;
  }
  throw new Error('parseMapping accepted the mapping');
}

/** The problems of a mapping, as [line, message] with the file prefix taken off. */
function problemList(text: string): [number, string][] {
  const error = problemsOf(text);
  const lines = error.message.split('\n');
  const out: [number, string][] = [[error.location.line!, lines[0]]];
  for (const line of lines.slice(1)) {
    const m = /^mappings\/products\.sql:(\d+): (.*)$/.exec(line);
    expect(m, line).not.toBeNull();
    out.push([Number(m![1]), m![2]]);
  }
  return out;
}

describe('parseMapping: a valid mapping', () => {
  it('reads every header key and the SELECT', () => {
    const text = [
      '-- Products from the Acme catalog.',
      '-- target: app.products',
      '-- key: SKU, "Line No"',
      '-- on_conflict: newer:updated_at',
      '-- duplicates: first',
      '-- description: nightly catalog: prices, stock',
      '-- check: price >= 0 | price must not be negative',
      "-- check: name || sku <> '' | name and sku must not both be empty",
      '',
      '-- the select',
      SELECT + ';',
      '',
    ].join('\n');
    const m = parseMapping(text, FILE);
    expect(m).toEqual<Mapping>({
      name: 'products',
      path: FILE,
      source: text,
      sha256: createHash('sha256').update(text).digest('hex'),
      target: 'app.products',
      keyColumns: ['sku', 'Line No'],
      onConflict: 'newer:updated_at',
      duplicates: 'first',
      checks: [
        { expression: 'price >= 0', message: 'price must not be negative', line: 7 },
        { expression: "name || sku <> ''", message: 'name and sku must not both be empty', line: 8 },
      ],
      selectSql: SELECT,
      selectLine: 11,
      headerLines: { target: 2, key: 3, on_conflict: 4, duplicates: 5, description: 6, check: 7 },
    });
  });

  it('defaults on_conflict to update, duplicates to last, and has no checks', () => {
    const m = parseMapping(mapping(BASE), FILE);
    expect(m).toMatchObject({
      onConflict: 'update',
      duplicates: 'last',
      checks: [],
      keyColumns: ['sku'],
      selectLine: 3,
    });
    expect(m.headerLines).toEqual({ target: 1, key: 2 });
  });

  it('takes the name from the file name', () => {
    expect(parseMapping(mapping(BASE), 'x/y/supplier.v2.SQL').name).toBe('supplier.v2');
    expect(parseMapping(mapping(BASE), 'plain').name).toBe('plain');
  });

  it('accepts keys in any case and loose spacing around the colon', () => {
    const m = parseMapping(mapping(['--TARGET:app.products', '--   Key  :   sku  ', '-- On_Conflict :skip']), FILE);
    expect(m).toMatchObject({ target: 'app.products', keyColumns: ['sku'], onConflict: 'skip' });
  });

  it('drops a trailing -- comment from values (not from checks)', () => {
    const m = parseMapping(
      mapping([
        '-- target: app.products   -- the table',
        '-- key: sku -- natural key',
        '-- on_conflict: update            -- update | skip | reject | newer:updated_at',
        '-- duplicates: last               -- last | first | reject',
        '-- description: a -- b',
      ]),
      FILE,
    );
    expect(m).toMatchObject({ target: 'app.products', keyColumns: ['sku'], onConflict: 'update', duplicates: 'last' });
  });

  it('accepts each on_conflict and duplicates value', () => {
    for (const [value, expected] of [
      ['update', 'update'],
      ['skip', 'skip'],
      ['reject', 'reject'],
      ['newer:updated_at', 'newer:updated_at'],
      ['newer: updated_at', 'newer:updated_at'],
      ['newer:Updated_At', 'newer:updated_at'], // an unquoted identifier folds to lower case
      ['newer:$x', undefined],
    ] as const) {
      const text = mapping([...BASE, `-- on_conflict: ${value}`]);
      if (expected) expect(parseMapping(text, FILE).onConflict, value).toBe(expected);
      else expect(() => parseMapping(text, FILE), value).toThrow(/on_conflict must be/);
    }
    for (const value of ['last', 'first', 'reject'] as const) {
      expect(parseMapping(mapping([...BASE, `-- duplicates: ${value}`]), FILE).duplicates).toBe(value);
    }
  });

  it('reads quoted identifiers in target and key', () => {
    const m = parseMapping(
      mapping(['-- target: "My Schema"."My ""Table"""', '-- key: "a,b", "Q""uote", plain_1, Mixed$']),
      FILE,
    );
    expect(m.target).toBe('"My Schema"."My ""Table"""');
    expect(m.keyColumns).toEqual(['a,b', 'Q"uote', 'plain_1', 'mixed$']);
    expect(parseMapping(mapping(['-- target: app."x.y"', '-- key: "SKU"']), FILE)).toMatchObject({
      target: 'app."x.y"',
      keyColumns: ['SKU'],
    });
  });

  it('splits a check at its last " | ", keeping SQL bars that are not surrounded by blanks', () => {
    const checks = parseMapping(
      mapping([
        ...BASE,
        "-- check: a || b <> '' | a and b | joined must not be empty",
        '-- check: flags|4 = 4 | bit 3 must be set',
        '-- check: price >= 0',
        '-- check:   qty between 0 and 10    |    qty out of range   ',
      ]),
      FILE,
    ).checks;
    expect(checks).toEqual([
      { expression: "a || b <> '' | a and b", message: 'joined must not be empty', line: 3 },
      { expression: 'flags|4 = 4', message: 'bit 3 must be set', line: 4 },
      { expression: 'price >= 0', message: 'check failed: price >= 0', line: 5 },
      { expression: 'qty between 0 and 10', message: 'qty out of range', line: 6 },
    ]);
  });

  it('strips trailing semicolons, blank lines and a trailing comment after the semicolon', () => {
    for (const tail of [
      ';',
      ';;',
      ' ; ; \n\n',
      ';\n-- end of mapping\n',
      '; -- done',
      ';\n\n-- one\n-- two\n',
      '\n;\n',
    ]) {
      const m = parseMapping(mapping(BASE, SELECT + tail), FILE);
      expect(m.selectSql, JSON.stringify(tail)).toBe(SELECT);
    }
    // A comment without a semicolon before it is harmless and kept.
    expect(parseMapping(mapping(BASE, `${SELECT}\n-- the end`), FILE).selectSql).toBe(`${SELECT}\n-- the end`);
    // A string literal that looks like a semicolon and comment is never cut.
    const literal = "select s.a as sku from staged s where s.b = 'x;--y'";
    expect(parseMapping(mapping(BASE, literal), FILE).selectSql).toBe(literal);
  });

  it('strips a BOM and reads CRLF files, with the right select line', () => {
    const text = '\uFEFF-- target: app.products\r\n-- key: sku\r\n\r\n' + SELECT.replaceAll('\n', '\r\n') + '\r\n';
    const m = parseMapping(text, FILE);
    expect(m).toMatchObject({ target: 'app.products', keyColumns: ['sku'], selectLine: 4, selectSql: SELECT });
    expect(m.sha256).toBe(createHash('sha256').update(text).digest('hex'));
  });

  it('skips blank lines and free comments between header and SELECT; header keys after it are SQL', () => {
    const text = [
      '',
      '-- target: app.products',
      '',
      '-- A free comment',
      '-- key: sku',
      '--',
      '',
      '  select s.sku as sku',
      '-- key: other',
      'from staged s',
      '',
    ].join('\n');
    const m = parseMapping(text, FILE);
    expect(m.selectLine).toBe(8);
    expect(m.keyColumns).toEqual(['sku']);
    expect(m.selectSql).toBe('  select s.sku as sku\n-- key: other\nfrom staged s');
  });

  it('accepts a body that starts with WITH, VALUES, TABLE, a parenthesis or a comment', () => {
    for (const body of [
      'with x as (select 1 as sku) select sku from x',
      'WITH x AS (SELECT 1) SELECT * FROM staged',
      'values (1)',
      'table staged',
      '(select s.sku from staged s) union all (select s.sku from staged s)',
      '/* header\n   comment */ select s.sku from staged s',
      '/* one */\n/* two */\nselect 1',
    ]) {
      expect(parseMapping(mapping(BASE, body), FILE).selectSql, body).toBe(body);
    }
  });
});

describe('parseMapping: problems', () => {
  it('reports a missing target and key at line 1, and a missing SELECT at the last line', () => {
    expect(problemList('-- description: nothing\n')).toEqual([
      [1, 'missing header "-- target: schema.table"'],
      [1, 'missing header "-- key: column[, column…]"'],
      [1, 'the mapping has no SELECT after its header'],
    ]);
    expect(problemList('-- target: app.products\n-- key: sku\n\n')).toEqual([
      [3, 'the mapping has no SELECT after its header'],
    ]);
    expect(problemList('-- target: app.products\n-- key: sku')).toEqual([
      [2, 'the mapping has no SELECT after its header'],
    ]);
    expect(problemList('')).toEqual([
      [1, 'missing header "-- target: schema.table"'],
      [1, 'missing header "-- key: column[, column…]"'],
      [1, 'the mapping has no SELECT after its header'],
    ]);
  });

  it('reports a missing key alone when the rest is fine', () => {
    const error = problemsOf(mapping(['-- target: app.products']));
    expect(error.message).toBe('missing header "-- key: column[, column…]"');
    expect(error.location).toEqual({ file: FILE, line: 1 });
    expect(error.exitCode).toBe(2);
  });

  it('rejects a target that is not schema.table', () => {
    for (const target of ['products', 'a.b.c', 'a.', '.b', '1a.b', 'a b.c', '"a.b', 'app.products;drop', '']) {
      const list = problemList(mapping([`-- target: ${target}`, '-- key: sku']));
      expect(list, target).toEqual([[1, `target must be a schema-qualified table (schema.table), not "${target}"`]]);
    }
  });

  it('rejects key parts that are not column names', () => {
    expect(problemList(mapping(['-- target: app.products', '-- key: sku, 1abc, two words, "open, ']))).toEqual([
      [2, 'key column "1abc" is not a column name'],
      [2, 'key column "two words" is not a column name'],
      // An unclosed quoted name does not swallow the commas after it.
      [2, 'key column ""open" is not a column name'],
      [2, 'key column "" is not a column name'],
    ]);
    expect(problemList(mapping(['-- target: app.products', '-- key: sku,']))).toEqual([
      [2, 'key column "" is not a column name'],
    ]);
    expect(problemList(mapping(['-- target: app.products', '-- key:']))).toEqual([
      [2, 'key column "" is not a column name'],
    ]);
    expect(problemList(mapping(['-- target: app.products', '-- key: ""']))).toEqual([
      [2, 'key column """" is not a column name'],
    ]);
  });

  it('rejects unknown on_conflict and duplicates values', () => {
    expect(problemList(mapping([...BASE, '-- on_conflict: merge', '-- duplicates: newest']))).toEqual([
      [3, 'on_conflict must be update, skip, reject or newer:<column>, not "merge"'],
      [4, 'duplicates must be last, first or reject, not "newest"'],
    ]);
    for (const value of ['UPDATE', 'newer:', 'newer:1x', 'newer:a b', 'update skip', '']) {
      expect(() => parseMapping(mapping([...BASE, `-- on_conflict: ${value}`]), FILE), value).toThrow(
        /on_conflict must be/,
      );
    }
    for (const value of ['Last', 'all', '']) {
      expect(() => parseMapping(mapping([...BASE, `-- duplicates: ${value}`]), FILE), value).toThrow(
        /duplicates must be/,
      );
    }
  });

  it('rejects unknown header keys, naming the known ones (a misspelt key must not be ignored)', () => {
    expect(problemList(mapping([...BASE, '-- dupliactes: first']))).toEqual([
      [3, 'unknown header key "dupliactes" (known: target, key, on_conflict, duplicates, check, description)'],
    ]);
    // A comment without `word:` is free text.
    expect(() =>
      parseMapping(mapping([...BASE, '-- Maps the Acme catalog: nightly', '-- see https://x']), FILE),
    ).not.toThrow();
  });

  it('rejects a key given twice (but any number of checks)', () => {
    expect(
      problemList(mapping([...BASE, '-- target: app.other', '-- duplicates: last', '-- duplicates: first'])),
    ).toEqual([
      [3, '"target" is given more than once'],
      [5, '"duplicates" is given more than once'],
    ]);
    expect(
      parseMapping(mapping([...BASE, '-- check: a > 0', '-- check: b > 0', '-- check: c > 0']), FILE).checks,
    ).toHaveLength(3);
  });

  it('rejects a check without an expression or with a bar but no message', () => {
    expect(
      problemList(mapping([...BASE, '-- check:', '-- check:    | only a message', '-- check: price > 0 |'])),
    ).toEqual([
      [3, 'check has no expression'],
      [4, 'check has no expression'],
      [5, 'check has no message after "|"'],
    ]);
  });

  it('rejects a body that is not a SELECT', () => {
    for (const body of [
      'delete from app.products',
      'insert into x select 1',
      'update x set a = 1',
      'selectx from staged',
      'drop table staged',
    ]) {
      expect(problemList(mapping(BASE, body)), body).toEqual([
        [3, 'the mapping body must be one SELECT (or WITH … SELECT) over staged'],
      ]);
    }
  });

  it('reports every problem at once, sorted by line, the first as the location', () => {
    const text = [
      '-- description: broken',
      '-- target: products',
      '-- key: 1sku',
      '-- on_conflict: merge',
      '-- duplicates: any',
      '-- colour: blue',
      '-- check: | no expression',
      '-- target: again.here',
      'delete from staged',
    ].join('\n');
    const error = problemsOf(text);
    expect(error.location).toEqual({ file: FILE, line: 2 });
    expect(error.message).toBe(
      [
        'target must be a schema-qualified table (schema.table), not "products"',
        `${FILE}:3: key column "1sku" is not a column name`,
        `${FILE}:4: on_conflict must be update, skip, reject or newer:<column>, not "merge"`,
        `${FILE}:5: duplicates must be last, first or reject, not "any"`,
        `${FILE}:6: unknown header key "colour" (known: target, key, on_conflict, duplicates, check, description)`,
        `${FILE}:7: check has no expression`,
        `${FILE}:8: "target" is given more than once`,
        `${FILE}:9: the mapping body must be one SELECT (or WITH … SELECT) over staged`,
      ].join('\n'),
    );
  });
});

describe('readMapping', () => {
  it('finds a mapping by name in the mappings folder, or by path', async () => {
    const dir = tempDir();
    const file = writeFile(dir, 'products.sql', mapping(BASE));
    expect((await readMapping('products', dir)).path).toBe(path.join(dir, 'products.sql'));
    expect((await readMapping(file)).name).toBe('products');
  });

  it('refuses odd names and says where it looked', async () => {
    const dir = tempDir();
    await expect(readMapping('../etc/passwd x', dir)).rejects.toThrow(/invalid mapping name/);
    await expect(readMapping('nothing', dir)).rejects.toThrow(
      `mapping "nothing" not found: no file ${path.join(dir, 'nothing.sql')}`,
    );
  });
});

describe('locateInMapping', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  /** The statement compile_load builds around a mapping's SELECT (sql/functions/compile.sql). */
  const wrap = (selectSql: string, stage = 'pg_temp.stage') =>
    `select st._line, m.*\nfrom ${stage} as st\ncross join lateral (\n  with staged as (select st.*)\n  select * from (\n${selectSql}\n  ) as mapping\n) as m`;

  const text = mapping(
    ['-- target: app.products', '-- key: sku', ''],
    'select\n  s.sku as sku,\n  s.nope as name\nfrom staged s',
  );

  it('maps a 1-based statement position to the file line and column', () => {
    const m = parseMapping(text, FILE);
    const statement = wrap(m.selectSql);
    const position = statement.indexOf('s.nope') + 1;
    expect(locateInMapping(m, statement, position)).toEqual({ file: FILE, line: 6, column: 3 });
    expect(locateInMapping(m, statement, String(position))).toEqual({ file: FILE, line: 6, column: 3 });
    // The first character of the SELECT, and its last.
    const start = statement.indexOf(m.selectSql) + 1;
    expect(locateInMapping(m, statement, start)).toEqual({ file: FILE, line: 4, column: 1 });
    expect(locateInMapping(m, statement, start + m.selectSql.length - 1)).toEqual({ file: FILE, line: 7, column: 13 });
  });

  it('gives nothing for positions outside the SELECT, or without a statement', () => {
    const m = parseMapping(text, FILE);
    const statement = wrap(m.selectSql);
    const start = statement.indexOf(m.selectSql) + 1;
    expect(locateInMapping(m, statement, start - 1)).toBeUndefined();
    expect(locateInMapping(m, statement, start + m.selectSql.length)).toBeUndefined();
    expect(locateInMapping(m, statement, 1)).toBeUndefined();
    expect(locateInMapping(m, undefined, 5)).toBeUndefined();
    expect(locateInMapping(m, statement, undefined)).toBeUndefined();
    expect(locateInMapping(m, 'select 1', 3)).toBeUndefined();
    expect(locateInMapping(m, statement, 'garbage')).toBeUndefined();
  });

  it('counts positions in characters, as PostgreSQL does, past emoji and accents', async () => {
    const body = "select '😀😀' as e, 'é' as f,\n  s.\"Item Code\" as sku, s.missing as name\nfrom staged s";
    const m = parseMapping(mapping(BASE, body), FILE);
    const client = await db.pool.connect();
    try {
      await client.query('create temp table stage (_line bigint, "Item Code" text)');
      // The stage name has an emoji too, so the offset of the SELECT is in characters as well.
      await client.query('create temp table "stage😀" (_line bigint, "Item Code" text)');
      for (const stage of ['pg_temp.stage', 'pg_temp."stage😀"']) {
        const statement = wrap(m.selectSql, stage);
        const error = await client.query(statement).then(
          () => undefined,
          (e: { code?: string; position?: string }) => e,
        );
        expect(error?.code).toBe('42703');
        expect(locateInMapping(m, statement, error?.position)).toEqual({ file: FILE, line: 4, column: 25 });
      }
    } finally {
      client.release();
    }
  });
});
