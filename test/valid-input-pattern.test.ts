// ferry.valid_input_pattern() lets values skip the exact (and, on PostgreSQL 15, slow) type
// check. A pattern that matched one invalid value would fail a whole load at its typed insert,
// so every value a pattern matches is checked here against the type's own input function.
import { beforeAll, describe, expect, it } from 'vitest';

import { int, pick, prng, type Rand } from './helpers/prng.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

/** Random strings from the characters that matter to the type, short and long. */
function candidates(rand: Rand, alphabet: string, count: number, maxLength: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = 1 + int(rand, maxLength);
    let value = '';
    for (let j = 0; j < length; j++) value += pick(rand, [...alphabet]);
    out.push(value);
  }
  return out;
}

/** Random dates and timestamps around the edges of the valid ranges. */
function datetimes(rand: Rand, count: number): string[] {
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const date = `${pad(int(rand, 3100), 4)}-${pad(int(rand, 14), 2)}-${pad(int(rand, 33), 2)}`;
    const time = `${pad(int(rand, 26), 2)}:${pad(int(rand, 62), 2)}:${pad(int(rand, 62), 2)}`;
    const fraction = pick(rand, ['', '.5', '.123456', '.1234567']);
    const zone = pick(rand, ['', 'Z', '+02', '-05:30', '+1400', '+15', 'z', ' UTC']);
    out.push(pick(rand, [date, `${date}T${time}${fraction}${zone}`, `${date} ${time}${zone}`]));
  }
  return out;
}

const HANDPICKED = [
  '0',
  '-0',
  '+1',
  '1.',
  '.5',
  '1e5',
  '1,5',
  ' 1',
  '1 ',
  '',
  '-',
  '+',
  '.',
  'NaN',
  'Infinity',
  '32767',
  '32768',
  '-32768',
  '999999999',
  '2147483647',
  '2147483648',
  '9223372036854775807',
  '999999999999999999',
  '99999999.99',
  '9999999999.99',
  '9999999999.999',
  '12.345',
  'true',
  'TRUE',
  'Yes',
  'of',
  'on',
  '2026-02-28',
  '2026-02-29',
  '2026-02-30',
  '0000-01-01',
  '2026-13-01',
  '2026-05-14T03:24:14Z',
  '2026-05-14 24:00:00',
  '2026-05-14T23:59:60',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1',
  'hello',
  'héllo',
  'x'.repeat(40),
  'x'.repeat(41),
];

const TYPES: { type: string; alphabet: string; common: string[] }[] = [
  { type: 'smallint', alphabet: '0123456789+-. ', common: ['720', '-15'] },
  { type: 'integer', alphabet: '0123456789+-. e', common: ['720', '123456789'] },
  { type: 'bigint', alphabet: '0123456789+-', common: ['9000000000'] },
  { type: 'numeric', alphabet: '0123456789+-.e', common: ['246.14', '-3'] },
  { type: 'numeric(12,2)', alphabet: '0123456789+-.', common: ['246.14', '0.5', '9999999999.99'] },
  { type: 'numeric(6,2)', alphabet: '0123456789.-', common: ['1234.56'] },
  { type: 'numeric(3,0)', alphabet: '0123456789.-', common: ['999'] },
  { type: 'real', alphabet: '0123456789.-e', common: ['3.14'] },
  { type: 'double precision', alphabet: '0123456789.-e', common: ['3.14'] },
  { type: 'boolean', alphabet: 'tfyesnoTFYESNO10', common: ['true', 'f', 'YES', '1'] },
  { type: 'date', alphabet: '0123456789-', common: ['2026-05-14'] },
  { type: 'timestamp without time zone', alphabet: '0123456789-: T', common: ['2026-05-14 03:24:14'] },
  { type: 'timestamp with time zone', alphabet: '0123456789-:TZ+', common: ['2026-05-14T03:24:14Z'] },
  { type: 'uuid', alphabet: '0123456789abcdefABCDEF-g', common: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'] },
  { type: 'character varying(40)', alphabet: 'ab é\n', common: ['Cordless drill'] },
  { type: 'character(5)', alphabet: 'ab ', common: ['abc'] },
  { type: 'character varying', alphabet: 'ab', common: ['anything'] },
  { type: 'text', alphabet: 'ab', common: ['anything'] },
];

describe('ferry.valid_input_pattern', () => {
  it.each(TYPES)('matches only valid input for $type', async ({ type, alphabet, common }) => {
    const rand = prng(type.length * 7919);
    const values = [
      ...HANDPICKED,
      ...common,
      ...candidates(rand, alphabet, 3000, 24),
      ...(/date|timestamp/.test(type) ? datetimes(rand, 3000) : []),
    ];
    const { rows } = await db.pool.query<{ value: string; error: string | null }>(
      `select v as value, ferry_util.input_error(v, $2) as error
       from unnest($1::text[]) as v
       where v ~ ferry.valid_input_pattern($2)`,
      [values, type],
    );
    const matchedButInvalid = rows.filter((r) => r.error !== null);
    expect(matchedButInvalid).toEqual([]);
    // The pattern is used at all: the usual values of the type take the fast path.
    const matched = new Set(rows.map((r) => r.value));
    expect(common.filter((v) => !matched.has(v))).toEqual([]);
  });

  it('has no pattern for types it does not know, or typmods it cannot bound', async () => {
    const { rows } = await db.pool.query<{ type: string; pattern: string | null }>(
      `select t as type, ferry.valid_input_pattern(t) as pattern
       from unnest(array['jsonb', 'inet', 'integer[]', 'numeric(3,5)', 'character varying(1000)', 'time']) as t`,
    );
    expect(rows.filter((r) => r.pattern !== null)).toEqual([]);
  });
});
