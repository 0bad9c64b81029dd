// The load summary a person reads: reject messages as wide as the terminal allows (whole when
// the output is not a terminal), and duplicate lines said apart from the rejects (issue 25).
import { describe, expect, it } from 'vitest';

import type { LoadResult } from '../src/load/types.js';
import { formatLoadResult } from '../src/report/load-summary.js';

const LONG = `invalid input syntax for type numeric: "${'9'.repeat(120)}"`;

const result: LoadResult = {
  status: 'succeeded',
  loadId: 7,
  mapping: { name: 'products', version: 1 },
  file: 'catalog.csv',
  counts: { read: 5, staged: 5, unparseable: 0, rejected: 1, duplicates: 2, inserted: 2, updated: 0, unchanged: 0 },
  reasons: [
    { rule: 'duplicate', column: null, count: 2, example: 'key appears on 3 lines; line 5 wins (duplicates: last)' },
    { rule: 'type', column: 'price', count: 1, example: LONG },
  ],
  timings: {},
};

describe('the load summary', () => {
  it('lists duplicate lines apart from the reject reasons', () => {
    const text = formatLoadResult(result);
    const table = text.slice(text.indexOf('top reject reasons:'), text.indexOf('duplicate lines'));
    expect(table).toMatch(/type\s+price/);
    expect(table).not.toMatch(/duplicate/);
    expect(text).toMatch(
      /^duplicate lines, not rejects: 2 superseded by another line of the same key \(key appears on 3 lines; line 5 wins \(duplicates: last\)\)$/m,
    );
  });

  it('cuts a reject message only to fit a terminal, at 70 characters at the least', () => {
    expect(formatLoadResult(result)).toContain(LONG);
    const narrow = formatLoadResult(result, { width: 80 });
    expect(narrow).toContain(`${LONG.slice(0, 69)}…`);
    const wide = formatLoadResult(result, { width: 200 });
    expect(wide).toContain(`${LONG.slice(0, 159)}…`);
    expect(wide).not.toContain(LONG.slice(0, 161));
  });

  it("escapes a file's control characters: its name, a sheet's, the reason", () => {
    const hostile = {
      ...result,
      file: 'evil\u001b[2J.xlsx',
      source: { format: 'xlsx' as const, sheet: 'S\u009b31m', compression: 'none' as const },
      error: 'bad \u202e value',
    };
    const text = formatLoadResult(hostile as LoadResult);
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\x00-\x08\x0B-\x1F\x7F-\x9F\u202A-\u202E]/);
    expect(text).toContain('evil\\u{1b}[2J.xlsx');
  });
});
