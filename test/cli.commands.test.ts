import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  env = { DATABASE_URL: db.url };
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
});

describe('pgferry CLI', () => {
  it('load prints the load id, the summary and the reject reasons; exit 0', async () => {
    const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\nB,b,oops\n"C,c,3\nD,d,4\n');
    const run = await runCli(['load', file, '--tenant', 'acme', '--mapping', 'products', '--mappings-dir', dir], {
      env,
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^load \d+ registered/m);
    expect(run.stdout).toMatch(/load \d+ succeeded/);
    expect(run.stdout).toMatch(/read\s+4/);
    expect(run.stdout).toMatch(/type\s+price\s+invalid input syntax for type numeric: "oops"/);
    expect(run.stdout).toMatch(/unclosed_quote/);
    expect(run.stdout).not.toContain('\x1b['); // no progress bar when piped
  });

  it('the same file again is skipped with a message; exit 0', async () => {
    const file = path.join(dir, 'catalog.csv');
    const run = await runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir], { env });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^skipped .*already loaded .*--force loads it again/);
  });

  it('loads, status, rejects -o, mapping show', async () => {
    const loads = await runCli(['loads', '--json'], { env });
    expect(loads.code).toBe(0);
    const [latest] = JSON.parse(loads.stdout);
    expect(latest).toMatchObject({ tenant: 'acme', mapping: 'products', status: 'succeeded', rowsRead: 4 });

    const status = await runCli(['status', String(latest.id)], { env });
    expect(status.stdout).toMatch(/read 4 = staged 3 \+ unparseable 1/);
    expect(status.stdout).toMatch(/staged 3 = promoted 2 \+ duplicates 0 \+ rejected 1/);

    const out = path.join(dir, 'rejects.csv');
    const rejects = await runCli(['rejects', String(latest.id), '-o', out], { env });
    expect(rejects.stdout).toMatch(/2 rejected lines written/);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('sku,name,price,pgferry_line,pgferry_reasons,pgferry_raw');
    expect(lines[1]).toMatch(/^B,b,oops,3,"type price: invalid input syntax for type numeric: ""oops""",$/);
    expect(lines[2]).toMatch(/^,,,4,unclosed_quote: /);

    const show = await runCli(['mapping', 'show', 'products'], { env });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/create function .*transform_\d+\(\)/);
    expect(show.stdout).toMatch(/security definer/);
  });

  it('the rejects file, fixed, loads again with the same mapping', async () => {
    const out = path.join(dir, 'rejects.csv');
    const fixed = readFileSync(out, 'utf8').replace('B,b,oops', 'B,b,2.5');
    const file = writeFile(
      dir,
      'fixed.csv',
      fixed
        .split('\n')
        .filter((l) => !l.startsWith(',,,'))
        .join('\n'),
    );
    const run = await runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--json'], { env });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).counts).toMatchObject({ inserted: 1, rejected: 0 });
  });

  it('rejects -o keeps an empty value apart from a missing one, and so does the reload', async () => {
    // "" is an empty name, nothing is NULL: both rows rejected for their price.
    const file = writeFile(dir, 'empties.csv', 'sku,name,price\nE,"",bad\nF,,bad\n');
    const run = await runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--json'], { env });
    const { loadId } = JSON.parse(run.stdout);
    const out = path.join(dir, 'empties-rejects.csv');
    await runCli(['rejects', String(loadId), '-o', out], { env });
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[1]).toMatch(/^E,"",bad,2,/);
    expect(lines[2]).toMatch(/^F,,bad,3,/);

    const fixed = writeFile(dir, 'empties-fixed.csv', readFileSync(out, 'utf8').replaceAll(',bad,', ',1,'));
    const reload = await runCli(['load', fixed, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--json'], {
      env,
    });
    // name is NOT NULL: the empty name is a name, the missing one is rejected again.
    expect(JSON.parse(reload.stdout).counts).toMatchObject({ inserted: 1, rejected: 1 });
    const { rows } = await db.pool.query("select sku, name from app.products where sku in ('E', 'F')");
    expect(rows).toEqual([{ sku: 'E', name: '' }]);
  });

  it('exit codes: 2 for usage and input errors, 1 for a failed load', async () => {
    const missing = await runCli(
      ['load', path.join(dir, 'nope.csv'), '-t', 'acme', '-m', 'products', '--mappings-dir', dir],
      { env },
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^pgferry: no such file: .*nope\.csv$/m);
    expect(missing.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace

    const tenant = await runCli(
      ['load', path.join(dir, 'catalog.csv'), '-t', 'nobody', '-m', 'products', '--mappings-dir', dir],
      { env },
    );
    expect(tenant.code).toBe(2);
    expect(tenant.stderr).toMatch(/unknown tenant 'nobody'/);
    expect(tenant.stderr).toMatch(/hint: add it with: pgferry tenant add nobody/);

    const option = await runCli(['load', 'x.csv', '-t', 'acme', '-m', 'products', '--max-rejects', 'many'], { env });
    expect(option.code).toBe(2);

    const noArgs = await runCli(['load'], { env });
    expect(noArgs.code).toBe(2);

    const file = writeFile(dir, 'bad.csv', 'sku,name,price\nZ,z,bad\n');
    const failed = await runCli(
      ['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--max-rejects', '0'],
      { env },
    );
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/FAILED/);

    const help = await runCli(['load', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
  });

  it('an error naming a file whose name holds escape sequences shows them escaped, not to the terminal', async () => {
    const hostile = path.join(dir, 'evil\u001b[2J\u001b]0;pwned\u0007.csv');
    const run = await runCli(['inspect', hostile], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}.csv');
    // eslint-disable-next-line no-control-regex
    expect(run.stderr).not.toMatch(/[\x00-\x08\x0B-\x1F\x7F]/);
  });

  it('a broken mapping is reported as file:line:column with exit 2', async () => {
    writeFile(
      dir,
      'broken.sql',
      '-- target: app.products\n-- key: sku\nselect s.sku as sku,\n  s.nmae as name\nfrom staged s\n',
    );
    const run = await runCli(
      ['load', path.join(dir, 'catalog.csv'), '-t', 'acme', '-m', 'broken', '--mappings-dir', dir, '--force'],
      { env },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/broken\.sql:4:3: mapping broken: column s\.nmae does not exist/);
  });

  it('tenant add / list / protect', async () => {
    const add = await runCli(['tenant', 'add', 'globex'], { env });
    expect(add.code).toBe(0);
    expect((await runCli(['tenant', 'list'], { env })).stdout).toMatch(/globex/);
    const bad = await runCli(['tenant', 'add', 'Bad-Name'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid tenant name 'Bad-Name'/);
    // Roles belong to the whole server: a name of this database's own.
    const role = `app_rw_${db.name.slice(-10)}`;
    await db.pool.query(
      `create table app.orders (tenant_id text, id int); create role ${role}; grant select on app.orders to ${role}`,
    );
    const refused = await runCli(['tenant', 'protect', 'app.orders'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`would lock out: ${role}`));
    try {
      const kept = await runCli(['tenant', 'protect', 'app.orders', '--keep-role', role], { env });
      expect(kept.code).toBe(0);
      expect(kept.stdout).toMatch(new RegExp(`roles keeping full access: ${role}`));
    } finally {
      // A role outlives the database: the run leaves none behind.
      await db.pool.query(
        `drop policy if exists pgferry_keep on app.orders; revoke all on app.orders from ${role}; drop role ${role}`,
      );
    }
  });
});

describe('pgferry demo on a fresh machine', () => {
  it('starts the embedded PostgreSQL in ./.pgferry, loads the example catalog, prints the summary', async () => {
    const cwd = tempDir();
    // As root the server runs as the postgres OS user, which must be able to enter the folder.
    chmodSync(cwd, 0o755);
    const run = await runCli(['demo'], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/load 1 succeeded/);
    expect(run.stdout).toMatch(/read\s+10,000/);
    expect(run.stdout).toMatch(/top reject reasons:/);
    expect(run.stdout).toMatch(/try next:/);
    const again = await runCli(['loads', '--json'], { cwd });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)[0]).toMatchObject({ id: 1, tenant: 'demo', status: 'succeeded', rowsRead: 10000 });
  }, 120_000);
});
