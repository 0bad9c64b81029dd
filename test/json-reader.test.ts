import { describe, expect, it } from 'vitest';

import { readJsonRecords } from '../src/sources/file/json/json-reader.js';
import { type SourceItem, UNDECODABLE } from '../src/sources/reader-items.js';
import { SourceSyntaxError } from '../src/sources/source-syntax-error.js';

async function* chunked(text: string, size: number): AsyncGenerator<string> {
  for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
}

async function read(text: string, options: Parameters<typeof readJsonRecords>[1], size = 7): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const item of readJsonRecords(chunked(text, size), options)) out.push(simple(item));
  return out;
}

function simple(item: SourceItem): unknown {
  if (item.kind === 'record') return [item.line, Object.fromEntries(item.values as Map<string, string | null>)];
  if (item.kind === 'reject') return { line: item.line, rule: item.rule, message: item.message };
  return item;
}

const DOCUMENT = `{
  "meta": {"count": 3, "note": "a ] and a } in a string", "nested": [[1], {"x": "]"}]},
  "items": [
    {"sku": "A1", "price": {"amount": 10.50, "currency": "EUR"}, "tags": ["new", 1], "active": true},
    {"sku": "B\\"2", "extra": {}, "big": 12345678901234567890.123456789, "none": null, "uni": "\\u00e9\\ud83d\\ude00"},
    5,
    {"sku": tru}
  ],
  "later": [1, 2]
}`;

describe('readJsonRecords', () => {
  it('flattens objects (keeping each as JSON too), keeps arrays as JSON and numbers as written, at every chunk size', async () => {
    const expected = [
      [
        1,
        {
          sku: 'A1',
          price: '{"amount": 10.50, "currency": "EUR"}',
          'price.amount': '10.50',
          'price.currency': 'EUR',
          tags: '["new", 1]',
          active: 'true',
        },
      ],
      [2, { sku: 'B"2', extra: '{}', big: '12345678901234567890.123456789', none: null, uni: 'é😀' }],
      {
        line: 3,
        rule: 'not_an_object',
        message: 'record 3 (line 6): a record must be a JSON object, not "5" (column 1)',
      },
      {
        line: 4,
        rule: 'malformed_json',
        message: 'record 4 (line 7): expected a value, found "tru}" (column 9)',
      },
    ];
    for (const size of [1, 2, 3, 5, 64, 100_000]) {
      expect(await read(DOCUMENT, { format: 'json' }, size)).toEqual(expected);
    }
    expect(await read(DOCUMENT, { format: 'json', records: '/items' })).toEqual(expected);
  });

  it('--records reaches an array inside nested objects; a missing or non-array path is an error', async () => {
    const doc = '{"data": {"page": 1, "items": [{"a": 1}, {"a": 2}]}}';
    expect(await read(doc, { format: 'json', records: 'data.items' })).toEqual([
      [1, { a: '1' }],
      [2, { a: '2' }],
    ]);
    expect(await read(doc, { format: 'json', records: '$.data.items' }, 1)).toHaveLength(2);
    await expect(read(doc, { format: 'json', records: 'data.rows' })).rejects.toThrow(
      'no array at "data.rows" in the JSON document',
    );
    await expect(read(doc, { format: 'json', records: 'data.page' })).rejects.toThrow('"data.page" is not an array');
    await expect(read(doc, { format: 'json' })).rejects.toThrow('holds no array of records: name it with --records');
  });

  it('a truncated or broken document is a SourceSyntaxError with its line', async () => {
    const truncated = read('[{"a": 1},\n{"a": 2},\n{"a": ', { format: 'json' });
    await expect(truncated).rejects.toBeInstanceOf(SourceSyntaxError);
    await expect(read('[{"a": 1},\n{"a": 2},\n{"a": ', { format: 'json' })).rejects.toThrow(
      'the JSON ends inside a value',
    );
    await expect(read('[{"a": 1}\n {"a": 2}]', { format: 'json' })).rejects.toMatchObject({
      message: expect.stringContaining('expected "," or "]" after record 1, found'),
      line: 2,
      column: 2,
    });
    await expect(read('[{"a": 1}] trailing', { format: 'json' })).rejects.toThrow('after the end of the JSON document');
    await expect(read('   ', { format: 'json' })).rejects.toThrow('no JSON document');
  });

  it('NDJSON: each line a record; a broken line is rejected with its number and reading goes on', async () => {
    const lines = ['{"a": 1}', '', '{"a": 2, "b": {"c": "x"}}\r', '{"a": ', '[1]', '{"a": 3}'];
    expect(await read(lines.join('\n'), { format: 'ndjson' }, 4)).toEqual([
      [1, { a: '1' }],
      [3, { a: '2', b: '{"c": "x"}', 'b.c': 'x' }],
      { line: 4, rule: 'malformed_json', message: 'line 4: expected a value, found the end of the record (column 7)' },
      { line: 5, rule: 'not_an_object', message: 'line 5: a record must be a JSON object, not "[1]" (column 1)' },
      [6, { a: '3' }],
    ]);
  });

  it('a key seen twice in one record, or bytes not valid in the encoding, reject that record', async () => {
    const text = `{"a.b": 1, "a": {"b": 2}}\n{"a": 1, "a": 2}\n{"a": "x${UNDECODABLE}y"}\n`;
    expect(await read(text, { format: 'ndjson' })).toEqual([
      { line: 1, rule: 'malformed_json', message: 'line 1: the record has "a.b" twice (column 18)' },
      { line: 2, rule: 'malformed_json', message: 'line 2: the record has "a" twice (column 10)' },
      { line: 3, rule: 'encoding', message: "line 3: bytes not valid in the file's encoding" },
    ]);
  });

  it('hostile keys are plain column names', async () => {
    const text = '{"__proto__": "p", "constructor": "c", "a\\"; drop table x; --": "d"}\n';
    expect(await read(text, { format: 'ndjson' })).toEqual([
      [1, { ['__proto__']: 'p', constructor: 'c', 'a"; drop table x; --': 'd' }],
    ]);
  });

  it('an NDJSON line longer than the limit is rejected without being held', async () => {
    const long = `{"a": "${'x'.repeat(5000)}"}`;
    expect(await read(`{"a": 1}\n${long}\n{"a": 2}\n`, { format: 'ndjson', maxRecordChars: 1000 }, 512)).toEqual([
      [1, { a: '1' }],
      { line: 2, rule: 'record_too_large', message: 'line 2: the record is larger than 1000 characters' },
      [3, { a: '2' }],
    ]);
  });

  it('streams a 100,000-record array in small chunks', async () => {
    async function* big(): AsyncGenerator<string> {
      yield '[';
      for (let i = 1; i <= 100_000; i++) yield `${i > 1 ? ',' : ''}\n{"id": ${i}, "name": "n${i}", "p": {"q": ${i}.5}}`;
      yield '\n]\n';
    }
    let count = 0;
    let last: SourceItem | undefined;
    for await (const item of readJsonRecords(big(), { format: 'json' })) {
      count++;
      last = item;
    }
    expect(count).toBe(100_000);
    expect(simple(last!)).toEqual([
      100_000,
      { id: '100000', name: 'n100000', p: '{"q": 100000.5}', 'p.q': '100000.5' },
    ]);
  });
});
