// Bug 2 of issue 25: validate printed only the top reasons, had no threshold, and a failing
// mapping left a failed load and a mapping version behind; load --dry-run pointed at
// `pgferry rejects N` for a load that is gone.
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { cliEnv, runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
let file: string;

/** Loads, mapping versions and tables of the tenant's own schema: what validate must not leave. */
async function traces(): Promise<{ loads: number; mappings: number; tables: number }> {
  const { rows } = await db.pool.query(
    `select (select count(*) from ferry.loads)::int as loads,
            (select count(*) from ferry.mappings)::int as mappings,
            (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind = 'r' and n.nspname in (select schema_name from ferry.tenants))::int as tables`,
  );
  return rows[0];
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  env = { DATABASE_URL: db.url };
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
  file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\nB,b,oops\nC,c,=1+2\n"D,d,4\nE,e,2\nF,f,-5\n');
});

const validate = (...args: string[]) =>
  runCli(['validate', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, ...args], { env });

describe('pgferry validate', () => {
  it('lists every reject with its line and reason; --max-rejects 0 exits 1; nothing is left behind', async () => {
    const before = await traces();
    const run = await validate('--max-rejects', '0');
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^validated .*FAILED/m);
    expect(run.stdout).toMatch(/4 rows rejected, more than --max-rejects 0: a load would promote nothing/);
    expect(run.stdout).toMatch(/every one of the 4 rejects, in file order:/);
    expect(run.stdout).toMatch(/line 3\s+type\s+price\s+oops\s+invalid input syntax for type numeric: "oops"/);
    expect(run.stdout).toMatch(/line 4\s+type\s+price\s+=1\+2/);
    expect(run.stdout).toMatch(/line 5\s+unclosed_quote/);
    expect(run.stdout).toMatch(/line 7\s+check_constraint\s+products_price_check/);
    expect(run.stdout).not.toMatch(/pgferry rejects/);
    expect(await traces()).toEqual(before);
    expect(before.loads).toBe(0);
    expect(before.mappings).toBe(0);
  });

  it('without a threshold it exits 0, the rejects listed all the same; --max-reject-rate 70 passes, 10 fails', async () => {
    expect((await validate()).code).toBe(0);
    expect((await validate('--max-reject-rate', '70')).code).toBe(0);
    const over = await validate('--max-reject-rate', '10');
    expect(over.code).toBe(1);
    expect(over.stdout).toMatch(/66\.67% of rows rejected, more than --max-reject-rate 10\.00%/);
  });

  it('on a terminal, a list longer than the screen goes through the pager ($PAGER)', async () => {
    const pager = writeFile(dir, 'pager.sh', '#!/bin/sh\necho "PAGED BY TEST PAGER"\ncat\n');
    chmodSync(pager, 0o755);
    // `script` gives the CLI a terminal of 5 rows.
    const command = [
      'stty rows 5 cols 200;',
      `PAGER=${pager}`,
      `DATABASE_URL='${db.url}'`,
      process.execPath,
      path.resolve('bin/pgferry.js'),
      'validate',
      file,
      '-t acme -m products --mappings-dir',
      dir,
    ].join(' ');
    const run = await new Promise<string>((resolve, reject) =>
      execFile('script', ['-qec', command, '/dev/null'], { env: cliEnv() }, (error, stdout) =>
        error && error.code !== 0 ? reject(error) : resolve(stdout),
      ),
    );
    expect(run).toMatch(/PAGED BY TEST PAGER/);
    expect(run).toMatch(/line 7\s+check_constraint/);
  });

  it('-o writes every reject whole, formula-neutralised; --json includes them', async () => {
    const out = path.join(dir, 'rejects.csv');
    const run = await validate('-o', out);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^4 rejects written to .*rejects\.csv$/m);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('where,line,rule,column,value,message,raw');
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/^line 3,3,type,price,oops,/);
    expect(lines[2]).toMatch(/^line 4,4,type,price,'=1\+2,/);
    expect(lines[3]).toMatch(/^line 5,5,unclosed_quote,,,a quoted field .*,"""D,d,4"$/);
    expect(lines[4]).toMatch(/^line 7,7,check_constraint,products_price_check,/);

    const json = await validate('--json', '--max-rejects', '0');
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout);
    expect(result.status).toBe('failed');
    expect(result.rejects.map((r: { line: number; rule: string }) => [r.line, r.rule])).toEqual([
      [3, 'type'],
      [4, 'type'],
      [5, 'unclosed_quote'],
      [7, 'check_constraint'],
    ]);
    expect(result.rejects[0].where).toBe('line 3');
    expect(await traces()).toMatchObject({ loads: 0, mappings: 0 });
  });

  it('a mapping that fails leaves no failed load and no mapping version: exit 2', async () => {
    writeFile(
      dir,
      'broken.sql',
      '-- target: app.products\n-- key: sku\nselect s.nope as sku, s.name, s.price from staged s\n',
    );
    const before = await traces();
    const run = await runCli(['validate', file, '-t', 'acme', '-m', path.join(dir, 'broken.sql')], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/column s\.nope does not exist/);
    expect(run.stderr).toMatch(/the staged columns are: "sku", "name", "price"/);
    expect(await traces()).toEqual(before);
  });

  it('load --dry-run suggests what works, not `pgferry rejects` of a load that is gone', async () => {
    const run = await runCli(
      ['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--dry-run', '--max-rejects', '0'],
      { env },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).not.toMatch(/pgferry rejects/);
    expect(run.stdout).toMatch(/a dry run keeps no rejects: pgferry validate, with the same options, lists every one/);
    expect(await traces()).toMatchObject({ loads: 0, mappings: 0 });
  });

  it('a validate beside a real load keeps the version that load uses', async () => {
    const real = await runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir], { env });
    expect(real.code).toBe(0);
    expect((await validate()).code).toBe(0);
    expect(await traces()).toMatchObject({ loads: 1, mappings: 1 });
  });
});
