// pgferry tenant backup / verify / restore / copy / rollback-restore / purge, through the
// shipped CLI: what each prints, its exit codes, and that a passphrase comes from the
// environment, never from an argument.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let other: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  other = await createTestDatabase();
  dir = tempDir();
  env = { DATABASE_URL: db.url };
  await productsTable(db.pool, ['acme', 'bob']);
  await productsTable(other.pool, []);
  await db.pool.query(`insert into app.products (tenant_id, sku, name, price) values
    ('acme', 'A1', 'Anvil, "heavy"', 10), ('acme', 'A2', E'Axe\\nsharp', 2.5), ('bob', 'B1', 'Bobs', 1)`);
});

describe('pgferry tenant backup … purge', () => {
  it('backup writes the file and a table of rows and checksums; verify checks it without a database', async () => {
    const file = path.join(dir, 'acme.pgferry');
    const backup = await runCli(['tenant', 'backup', 'acme', '-o', file], { env });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/^backup of acme written to .*acme\.pgferry: 2 rows/);
    expect(backup.stdout).toMatch(/app\.products\s+2\s+[0-9a-f]{16}/);

    // No DATABASE_URL: verify needs none (and must not start the embedded server).
    const verify = await runCli(['tenant', 'verify', file], { cwd: dir });
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/: whole\ntenant acme \(key acme\), taken .* by pgferry .* from PostgreSQL/);
    expect(existsSync(path.join(dir, '.pgferry')), 'an embedded server was started').toBe(false);

    const bytes = readFileSync(file);
    bytes[bytes.length - 12] ^= 0x01;
    writeFileSync(path.join(dir, 'bad.pgferry'), bytes);
    const bad = await runCli(['tenant', 'verify', path.join(dir, 'bad.pgferry')], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/backup refused/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('encrypts with the passphrase of the environment; without one and without a terminal it says how to give it', async () => {
    const file = path.join(dir, 'acme-enc.pgferry');
    const missing = await runCli(['tenant', 'backup', 'acme', '-o', file, '--encrypt'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/a passphrase is needed.*\n.*PGFERRY_PASSPHRASE/);

    const secret = { ...env, MY_SECRET: 'open sesame' };
    const backup = await runCli(
      ['tenant', 'backup', 'acme', '-o', file, '--encrypt', '--passphrase-env', 'MY_SECRET'],
      {
        env: secret,
      },
    );
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/\(encrypted\)/);
    const wrong = await runCli(['tenant', 'verify', file], { env: { PGFERRY_PASSPHRASE: 'nope' } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/passphrase is wrong/);
    const right = await runCli(['tenant', 'verify', file], { env: { PGFERRY_PASSPHRASE: 'open sesame' } });
    expect(right.code).toBe(0);
    expect(right.stdout).toMatch(/whole, encrypted/);
  });

  it('restore --as into another database, copy, rollback-restore', async () => {
    const file = path.join(dir, 'acme.pgferry');
    const restore = await runCli(['tenant', 'restore', file, '--as', 'globex'], { env: { DATABASE_URL: other.url } });
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/^restore (\d+): 2 rows of acme \(taken .*\) restored as globex/);
    const id = /^restore (\d+)/.exec(restore.stdout)![1];

    const again = await runCli(['tenant', 'restore', file, '--as', 'globex'], { env: { DATABASE_URL: other.url } });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/tenant globex has rows already: app\.products \(2 rows\)/);

    const copy = await runCli(['tenant', 'copy', 'acme', '--to', other.url, '--as', 'initech'], { env });
    expect(copy.code).toBe(0);
    expect(copy.stdout).toMatch(/restored as initech/);
    const { rows } = await other.pool.query(
      `select tenant_id, sku, name, price::text from app.products order by tenant_id, sku`,
    );
    expect(rows).toEqual([
      { tenant_id: 'globex', sku: 'A1', name: 'Anvil, "heavy"', price: '10.00' },
      { tenant_id: 'globex', sku: 'A2', name: 'Axe\nsharp', price: '2.50' },
      { tenant_id: 'initech', sku: 'A1', name: 'Anvil, "heavy"', price: '10.00' },
      { tenant_id: 'initech', sku: 'A2', name: 'Axe\nsharp', price: '2.50' },
    ]);

    const undo = await runCli(['tenant', 'rollback-restore', id], { env: { DATABASE_URL: other.url } });
    expect(undo.code).toBe(0);
    expect(undo.stdout).toMatch(`restore ${id} rolled back: 2 rows deleted, 0 replaced rows back`);
    const { rows: left } = await other.pool.query(
      `select count(*)::int as n from app.products where tenant_id = 'globex'`,
    );
    expect(left[0].n).toBe(0);
  });

  it('load --backup-to DIR --keep N backs the tenant up first, keeping the last N', async () => {
    productsMapping(dir);
    const backups = path.join(dir, 'backups');
    for (let i = 1; i <= 3; i++) {
      const file = path.join(dir, `more-${i}.csv`);
      writeFileSync(file, `sku,name,price\nM${i},more ${i},${i}\n`);
      const run = await runCli(
        ['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--backup-to', backups, '--keep', '2'],
        { env },
      );
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(
        new RegExp(`^backup of acme: .*acme-\\d{8}T\\d{9}Z\\.pgferry \\(${i + 1} rows\\)`, 'm'),
      );
    }
    const kept = readdirSync(backups).sort();
    expect(kept).toHaveLength(2);
    // The newest holds what the second load left: the rows before the third.
    const verify = await runCli(['tenant', 'verify', path.join(backups, kept[1]), '--json'], { cwd: dir });
    expect(JSON.parse(verify.stdout).trailer.tables[0].rows).toBe(4);
    const keepAlone = await runCli(['load', 'x.csv', '-t', 'acme', '-m', 'products', '--keep', '2'], { env });
    expect(keepAlone.code).toBe(2);
    expect(keepAlone.stderr).toMatch(/--keep goes with --backup-to/);
    await db.pool.query(`delete from app.products where sku like 'M%'`);
  });

  it('purge lists first, and purges only with --yes', async () => {
    const plan = await runCli(['tenant', 'purge', 'bob'], { env });
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/^purging bob would delete:/);
    expect(plan.stdout).toMatch(/rows\s+app\.products\s+1 rows/);
    expect(plan.stdout).toMatch(/to purge: pgferry tenant purge bob --yes/);
    const { rows: still } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'bob'`);
    expect(still[0].n).toBe(1);

    const purge = await runCli(['tenant', 'purge', 'bob', '--yes'], { env });
    expect(purge.code).toBe(0);
    expect(purge.stdout).toMatch(/^tenant bob purged/);
    const { rows } = await db.pool.query(`select tenant_id, count(*)::int as n from app.products group by 1`);
    expect(rows).toEqual([{ tenant_id: 'acme', n: 2 }]);
  });
});
