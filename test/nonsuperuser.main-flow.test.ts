// pgferry as managed PostgreSQL has it: no superuser, only a role with LOGIN CREATEROLE CREATEDB
// that owns its database (RDS, Cloud SQL, Azure, Neon, Supabase hand out such a role). A
// superuser here only creates that role and its database; everything else runs as the role,
// on PostgreSQL 15 (old CREATEROLE rules) as on 16+ (the creator gets ADMIN OPTION only).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { dropDatabase } from '../src/db/database.js';
import { addTenant, exportRows, load, migrate, protectTable, rollback } from '../src/index.js';
import { databaseUrl } from './global-setup.js';
import { PRODUCTS_DDL, productsMapping, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';

// A superuser only to give the role its own database (on 16+, CREATE DATABASE … OWNER needs
// SET ROLE on the owner, which the test role lacks for roles it creates).
const adminUrl = inject('superuserUrl');
const suffix = randomBytes(4).toString('hex');
const ROLE = `pgferry_admin_${suffix}`;
const PASSWORD = randomBytes(12).toString('hex');
const DATABASE = `pgferry_nosuper_${suffix}`;

let url: string;
let pool: pg.Pool;

async function asSuperuser(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await asSuperuser(`create role ${ROLE} login createrole createdb password '${PASSWORD}'`);
  await asSuperuser(`create database ${DATABASE} owner ${ROLE}`);
  const u = new URL(databaseUrl(adminUrl, DATABASE));
  u.username = ROLE;
  u.password = PASSWORD;
  url = u.toString();
  pool = new pg.Pool({ connectionString: url, max: 4 });
});

afterAll(async () => {
  const { rows } = await pool.query<{ instance_id: string }>('select instance_id from ferry.settings').catch(() => ({
    rows: [{ instance_id: 'none' }],
  }));
  await pool.end();
  await dropDatabase(adminUrl, DATABASE, rows[0].instance_id);
  await asSuperuser(`drop role if exists ${ROLE}`);
});

describe('as a LOGIN CREATEROLE CREATEDB role that owns its database (no superuser)', () => {
  it('is not a superuser (the test proves nothing otherwise)', async () => {
    const { rows } = await pool.query(
      `select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user`,
    );
    expect(rows[0]).toEqual({ rolsuper: false, rolcreaterole: true, rolcreatedb: true });
  });

  it('installs the schema, adds tenants, protects a table, loads, exports and rolls back', async () => {
    const client = await pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
    await pool.query('create schema app');
    await pool.query(PRODUCTS_DDL);
    await addTenant(pool, 'acme');
    await addTenant(pool, 'bob');
    await protectTable(pool, 'app.products');

    const dir = tempDir();
    const mapping = productsMapping(dir);
    const file = writeFile(dir, 'acme.csv', 'sku,name,price\nA-1,Anvil,10.50\nA-2,Rope,oops\nA-3,Hammer,7\n');
    const result = await load(pool, { file, tenant: 'acme', mapping });
    expect(result.status).toBe('succeeded');
    expect(result.counts).toMatchObject({ read: 3, staged: 3, rejected: 1, inserted: 2 });
    const bob = await load(pool, {
      file: writeFile(dir, 'bob.csv', 'sku,name,price\nA-1,Bob anvil,1\n'),
      tenant: 'bob',
      mapping,
    });
    expect(bob.counts).toMatchObject({ inserted: 1 });

    const out = path.join(dir, 'acme-export.csv');
    const exported = await exportRows(pool, { tenant: 'acme', table: 'app.products', output: out });
    expect(exported.rows).toBe(2);
    expect(readFileSync(out, 'utf8')).not.toContain('Bob anvil');

    const undone = await rollback(pool, result.loadId!);
    expect(undone.deleted).toBe(2);
    const { rows } = await pool.query(`select tenant_id, sku from app.products order by 1, 2`);
    expect(rows).toEqual([{ tenant_id: 'bob', sku: 'A-1' }]);
  });

  it('runs the quickstart (pgferry demo) through the CLI', async () => {
    // The demo creates its own app.products.
    await pool.query('drop table app.products');
    const cli = await runCli(['demo'], { cwd: tempDir(), env: { DATABASE_URL: url } });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout + cli.stderr).toMatch(/load \d+ succeeded/);
  });
});
