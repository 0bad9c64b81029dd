// ferry_util.input_error() decides which values become `type` rejects. It must agree with
// what storing the value in a column of the type does: a value it passes that the column
// refuses fails the whole load at its typed insert. On PostgreSQL 16+ it is pg_input_is_valid;
// on 15 a cast into a variable for common types, with quick typmod checks, else EXECUTE.
import { beforeAll, describe, expect, it } from 'vitest';

import { int, pick, prng, type Rand } from './helpers/prng.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  // The reference: an INSERT of the literal into a column of the type (assignment rules).
  await db.pool.query(`
    create schema ref;
    create function ref.store_error(p_value text, p_table text) returns text language plpgsql as $$
    begin
      execute format('insert into ref.%I values (%L)', p_table, p_value);
      return null;
    exception when data_exception then
      return sqlerrm;
    end $$`);
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

describe('ferry_util.input_error', () => {
  it.each(TYPES)('agrees with storing the value for $type', async ({ type, alphabet, common }) => {
    const rand = prng(type.length * 7919);
    const values = [
      ...HANDPICKED,
      ...common,
      ...candidates(rand, alphabet, 2000, 24),
      ...(/date|timestamp/.test(type) ? datetimes(rand, 2000) : []),
    ];
    const table = `sink_${type.replace(/[^a-z0-9]/g, '_')}`;
    await db.pool.query(`create table ref.${table} (v ${type})`);
    const { rows } = await db.pool.query<{ value: string; error: string | null; reference: string | null }>(
      `select v as value, ferry_util.input_error(v, $2) as error, ref.store_error(v, $3) as reference
       from unnest($1::text[]) as v`,
      [values, type, table],
    );
    const disagreements = rows.filter((r) => (r.error === null) !== (r.reference === null));
    expect(disagreements).toEqual([]);
    const otherMessages = rows.filter((r) => r.error !== r.reference);
    expect(otherMessages).toEqual([]);
    // Both outcomes are exercised: the usual values pass, and some values fail.
    expect(rows.filter((r) => common.includes(r.value) && r.error !== null)).toEqual([]);
    if (!/^(text|character varying)$/.test(type)) expect(rows.some((r) => r.error !== null)).toBe(true);
  });
});
