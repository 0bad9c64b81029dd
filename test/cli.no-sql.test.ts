// The CLI is a thin layer over the library: src/cli/ parses arguments, calls functions that
// src/index.ts exports, and prints. No file there runs SQL of its own.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

const CLI = path.resolve(import.meta.dirname, '../src/cli');

/** What gives SQL away in a file: a query run, a connection taken, or SQL naming pgferry's or the queue's schema. */
const SQL_SIGNS: [string, RegExp][] = [
  ['runs a query', /\.query\s*[<(]/],
  ['takes a connection', /\.connect\s*\(/],
  ['imports pg', /\bfrom\s+['"]pg['"]/],
  ['calls a function of ferry or graphile_worker', /\b(?:ferry|graphile_worker)\.[a-z_]+\s*\(/i],
  [
    'names an object of ferry or graphile_worker in SQL',
    /\b(?:select|from|join|update|into|delete|truncate|lock(?:\s+table)?)\s+(?:only\s+)?(?:ferry|graphile_worker)\./i,
  ],
];

/** The SQL signs in a file's text: `[what, line]` for each. */
function sqlIn(text: string): [string, number][] {
  const found: [string, number][] = [];
  text.split('\n').forEach((line, i) => {
    for (const [what, sign] of SQL_SIGNS) if (sign.test(line)) found.push([what, i + 1]);
  });
  return found;
}

describe('src/cli/', () => {
  it('runs no SQL of its own: every command calls the library', () => {
    const files = readdirSync(CLI).filter((name) => name.endsWith('.ts'));
    expect(files).toContain('cancel-command.ts');
    const found = files.flatMap((name) =>
      sqlIn(readFileSync(path.join(CLI, name), 'utf8')).map(([what, line]) => `src/cli/${name}:${line}: ${what}`),
    );
    expect(
      found,
      `SQL in the CLI (move it into a library function, exported by src/index.ts):\n${found.join('\n')}`,
    ).toEqual([]);
  });

  it('sees SQL when there is some (the scan works), not in help text', () => {
    expect(sqlIn("const { rows } = await db.pool.query('select ferry.request_cancel($1, $2) as done', [id]);")).toEqual(
      [
        ['runs a query', 1],
        ['calls a function of ferry or graphile_worker', 1],
        ['names an object of ferry or graphile_worker in SQL', 1],
      ],
    );
    expect(sqlIn('`update ferry.syncs set paused_at = now() where name = $1`')).toEqual([
      ['names an object of ferry or graphile_worker in SQL', 1],
    ]);
    expect(sqlIn("await client.query<{ done: string }>(sql)\nimport pg from 'pg';")).toEqual([
      ['runs a query', 1],
      ['imports pg', 2],
    ]);
    expect(sqlIn('they were (one line in ferry.audit says it ran). A file loaded before')).toEqual([]);
    expect(sqlIn("--query <select>', '--from: the SELECT to read')")).toEqual([]);
  });
});
