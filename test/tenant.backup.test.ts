// A tenant's backup, verify, restore (in place, as another tenant, into another database),
// copy, rollback of a restore and purge, for two tenants with rows in two protected tables
// joined by a foreign key, with text that needs quoting. bob's rows carry BOBSECRET: nothing
// of acme's life may touch them or carry them.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The public API (src/index.ts): what the CLI does, a Node program does too.
import {
  addTenant,
  backupTenant,
  copyTenant,
  PgferryError,
  planPurge,
  protectTable,
  purgeTenant,
  restoreTenant,
  rollbackRestore,
  verifyBackup,
} from '../src/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const SECRET = 'BOBSECRET';
const db: TestDatabase = await createTestDatabase();
const other: TestDatabase = await createTestDatabase();
let dir: string;

/** Values that need quoting in COPY, CSV and JSON alike. */
const AWKWARD = [
  'plain',
  'comma, and "quotes"',
  'new\nline and\r\ncarriage return',
  'tab\there and a back\\slash \\. and \\N',
  'Ünïcödé — 日本語 — emoji 🚢',
  '\\.',
  '',
];

async function createTables(pool: pg.Pool): Promise<void> {
  await pool.query('create schema app');
  await pool.query(`
    create table app.suppliers (
      tenant_id text not null,
      id        integer generated always as identity,
      name      text not null,
      primary key (tenant_id, id)
    )`);
  await pool.query(`
    create table app.products (
      tenant_id   text not null,
      sku         text not null,
      supplier_id integer not null,
      name        text,
      price       numeric(10,2),
      tags        text[],
      added       date,
      label       text generated always as (upper(sku)) stored,
      primary key (tenant_id, sku),
      foreign key (tenant_id, supplier_id) references app.suppliers (tenant_id, id)
    )`);
  // Protected child first: the backup's order comes from the foreign key, not from this.
  await protectTable(pool, 'app.products');
  await protectTable(pool, 'app.suppliers');
}

async function seed(): Promise<void> {
  await addTenant(db.pool, 'acme');
  await addTenant(db.pool, 'bob');
  for (const [tenant, marker] of [
    ['acme', 'acme'],
    ['bob', SECRET],
  ]) {
    const { rows } = await db.pool.query<{ id: number }>(
      `insert into app.suppliers (tenant_id, name) select $1, $2 || ' ' || v from unnest($3::text[]) v returning id`,
      [tenant, marker, AWKWARD],
    );
    await db.pool.query(
      `insert into app.products (tenant_id, sku, supplier_id, name, price, tags, added)
       select $1, $2 || '-' || i, ($3::int[])[i % cardinality($3::int[]) + 1],
              case when i % 9 = 0 then null else ($4::text[])[i % cardinality($4::text[]) + 1] || ' ' || $2 end,
              i * 1.25, array[($4::text[])[i % 3 + 1], 'x'], date '2026-01-01' + i
       from generate_series(1, 50) i`,
      [tenant, marker, rows.map((r) => r.id), AWKWARD],
    );
  }
}

/** A tenant's rows of both tables, the tenant column left out, in key order: what must survive. */
async function rowsOf(pool: pg.Pool, tenant: string): Promise<unknown> {
  const { rows: suppliers } = await pool.query('select id, name from app.suppliers where tenant_id = $1 order by id', [
    tenant,
  ]);
  const { rows: products } = await pool.query(
    'select sku, supplier_id, name, price, tags, added, label from app.products where tenant_id = $1 order by sku',
    [tenant],
  );
  return { suppliers, products };
}

async function refused(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected a refusal').toBeInstanceOf(PgferryError);
  expect((error as Error).message).toMatch(message);
}

let acmeBefore: unknown;
let bobBefore: unknown;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pgferry-backup-'));
  await createTables(db.pool);
  await createTables(other.pool);
  await seed();
  acmeBefore = await rowsOf(db.pool, 'acme');
  bobBefore = await rowsOf(db.pool, 'bob');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tenant backup and restore', () => {
  it('writes a manifest and the tables in foreign-key order, with nothing of another tenant', async () => {
    const file = path.join(dir, 'acme.pgferry');
    const result = await backupTenant(db.pool, { tenant: 'acme', output: file });
    expect(result.header.tables.map((t) => t.table)).toEqual(['suppliers', 'products']);
    expect(result.trailer.tables.map((t) => t.rows)).toEqual([AWKWARD.length, 50]);
    expect(result.header.tables[1].columns.map((c) => c.name)).toEqual([
      'sku',
      'supplier_id',
      'name',
      'price',
      'tags',
      'added',
    ]);
    const plain = gunzipSync(await readFile(file)).toString('utf8');
    expect(plain).toContain('acme');
    expect(plain).not.toContain(SECRET);
    expect(plain).not.toContain('bob');

    const verified = await verifyBackup(file);
    expect(verified.rows).toBe(AWKWARD.length + 50);
    expect(verified.encrypted).toBe(false);
    expect(verified.header.tenant).toEqual({ slug: 'acme', key: 'acme' });
  });

  it('restores with --replace exactly the snapshot, after deletes, updates and inserts, and leaves bob as he was', async () => {
    const file = path.join(dir, 'acme-replace.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file });
    await db.pool.query(`delete from app.products where tenant_id = 'acme' and sku in ('acme-1', 'acme-2')`);
    await db.pool.query(
      `update app.products set name = 'damaged', tags = null where tenant_id = 'acme' and sku = 'acme-3'`,
    );
    await db.pool.query(
      `insert into app.products (tenant_id, sku, supplier_id) select 'acme', 'new', min(id) from app.suppliers where tenant_id = 'acme'`,
    );
    await db.pool.query(`update app.suppliers set name = 'renamed' where tenant_id = 'acme'`);
    expect(await rowsOf(db.pool, 'acme')).not.toEqual(acmeBefore);

    await refused(restoreTenant(db.pool, { input: file }), /tenant acme has rows already/);
    const restored = await restoreTenant(db.pool, { input: file, replace: true });
    expect(restored.tables).toEqual([
      { table: 'app.suppliers', rows: AWKWARD.length, replaced: AWKWARD.length },
      { table: 'app.products', rows: 50, replaced: 49 },
    ]);
    expect(await rowsOf(db.pool, 'acme')).toEqual(acmeBefore);
    expect(await rowsOf(db.pool, 'bob')).toEqual(bobBefore);

    // Rolled back like a load: the damaged rows are back, bob still as he was.
    const rolledBack = await rollbackRestore(db.pool, restored.restoreId);
    expect(rolledBack).toMatchObject({
      outcome: 'rolled_back',
      deleted: AWKWARD.length + 50,
      restored: AWKWARD.length + 49,
    });
    const { rows } = await db.pool.query(`select name from app.products where tenant_id = 'acme' and sku = 'acme-3'`);
    expect(rows).toEqual([{ name: 'damaged' }]);
    expect(await rowsOf(db.pool, 'bob')).toEqual(bobBefore);
    // The copies of the rows --replace removed (kept outside row-level security) are gone.
    const { rows: kept } = await db.pool.query(
      'select count(*)::int as n from ferry.restore_undo where restore_id = $1',
      [restored.restoreId],
    );
    expect(kept[0].n).toBe(0);
    expect((await rollbackRestore(db.pool, restored.restoreId)).outcome).toBe('already_rolled_back');

    // And the restore once more, to leave acme as it was for the tests after.
    await restoreTenant(db.pool, { input: file, replace: true });
    expect(await rowsOf(db.pool, 'acme')).toEqual(acmeBefore);
  });

  it('restores --as into a second database: the same rows under the new tenant, audited, sequences moved on', async () => {
    const file = path.join(dir, 'acme-as.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file });
    const restored = await restoreTenant(other.pool, { input: file, as: 'globex' });
    expect(restored.tenant).toBe('globex');
    expect(restored.rows).toBe(AWKWARD.length + 50);
    expect(await rowsOf(other.pool, 'globex')).toEqual(acmeBefore);
    const { rows: tenants } = await other.pool.query('select slug, tenant_key from ferry.tenants');
    expect(tenants).toEqual([{ slug: 'globex', tenant_key: 'globex' }]);
    const { rows: audit } = await other.pool.query(
      `select outcome, details->'tables' as tables from ferry.audit where command = 'tenant restore'`,
    );
    expect(audit).toHaveLength(1);
    expect(audit[0].outcome).toBe('restored');
    // The identity column's sequence is past the restored ids: the application's next insert fits.
    await other.pool.query(`insert into app.suppliers (tenant_id, name) values ('globex', 'next')`);

    // Restored rows pass through row-level security: a backup whose tenant column would not
    // fit the tenant's policies is not the question here, but a second restore without
    // --replace is refused and changes nothing.
    const before = await rowsOf(other.pool, 'globex');
    await refused(restoreTenant(other.pool, { input: file, as: 'globex' }), /has rows already/);
    expect(await rowsOf(other.pool, 'globex')).toEqual(before);

    // A row the restore wrote, changed since: its rollback is refused and changes nothing, unless forced.
    await other.pool.query(
      `update app.suppliers set name = 'changed' where tenant_id = 'globex' and id = (select min(id) from app.suppliers)`,
    );
    const refusedRollback = await rollbackRestore(other.pool, restored.restoreId);
    expect(refusedRollback).toMatchObject({
      outcome: 'conflicts',
      deleted: 0,
      conflicts: [{ table: 'app.suppliers', restored: AWKWARD.length, unchanged: AWKWARD.length - 1 }],
    });
    expect(await rowsOf(other.pool, 'globex')).not.toEqual(acmeBefore);
    const { rows: still } = await other.pool.query(
      `select count(*)::int as n from app.products where tenant_id = 'globex'`,
    );
    expect(still[0].n).toBe(50);
    const forced = await rollbackRestore(other.pool, restored.restoreId, { force: true });
    expect(forced).toMatchObject({ outcome: 'rolled_back', deleted: AWKWARD.length - 1 + 50 });
    // What the restore did not write stays: the changed row, and the application's own row.
    const { rows: left } = await other.pool.query(
      `select name from app.suppliers where tenant_id = 'globex' order by name`,
    );
    expect(left).toEqual([{ name: 'changed' }, { name: 'next' }]);
  });

  it('refuses a file with one byte changed, in verify and in restore, and changes nothing', async () => {
    const file = path.join(dir, 'acme-tamper.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file, gzip: false });
    const bytes = await readFile(file);
    // One byte inside acme's rows: a letter of a supplier's name becomes another.
    const at = bytes.indexOf('acme plain');
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(bytes);
    tampered[at] = tampered[at] ^ 0x01;
    const bad = path.join(dir, 'acme-tampered.pgferry');
    await writeFile(bad, tampered);
    await refused(verifyBackup(bad), /backup refused: the rows of app\.suppliers do not match their SHA-256/);

    const before = await rowsOf(db.pool, 'acme');
    await refused(restoreTenant(db.pool, { input: bad, replace: true }), /backup refused/);
    expect(await rowsOf(db.pool, 'acme')).toEqual(before);
    await refused(restoreTenant(other.pool, { input: bad, as: 'initech' }), /backup refused/);
    const { rows } = await other.pool.query(`select count(*)::int as n from ferry.tenants where slug = 'initech'`);
    expect(rows[0].n).toBe(0);
  });

  it('refuses a compressed file with one byte changed, or cut short', async () => {
    const file = path.join(dir, 'acme-gz.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file });
    const bytes = await readFile(file);
    for (const at of [20, Math.floor(bytes.length / 2), bytes.length - 5]) {
      const tampered = Buffer.from(bytes);
      tampered[at] = tampered[at] ^ 0x10;
      await writeFile(path.join(dir, 'bad.gz'), tampered);
      await refused(verifyBackup(path.join(dir, 'bad.gz')), /backup refused/);
    }
    await writeFile(path.join(dir, 'empty'), '');
    await refused(verifyBackup(path.join(dir, 'empty')), /backup refused: it is empty/);
    await writeFile(path.join(dir, 'other.csv'), 'sku,name\nA,b\n');
    await refused(verifyBackup(path.join(dir, 'other.csv')), /backup refused: it is not a pgferry tenant backup/);
    await refused(verifyBackup(path.join(dir, 'missing')), /cannot read .*missing/);
    await writeFile(path.join(dir, 'cut.gz'), bytes.subarray(0, bytes.length - 30));
    await refused(verifyBackup(path.join(dir, 'cut.gz')), /backup refused/);
    await refused(restoreTenant(db.pool, { input: path.join(dir, 'cut.gz'), replace: true }), /backup refused/);
    expect(await rowsOf(db.pool, 'acme')).toEqual(acmeBefore);
  });

  it('encrypts: the right passphrase restores, a wrong one or a changed byte is refused', async () => {
    const file = path.join(dir, 'acme-enc.pgferry');
    const passphrase = 'correct horse battery staple';
    const result = await backupTenant(db.pool, { tenant: 'acme', output: file, passphrase });
    expect(result.encrypted).toBe(true);
    const bytes = await readFile(file);
    expect(bytes.includes('acme')).toBe(false);
    expect(bytes.subarray(0, 11).toString('latin1')).toBe('PGFERRY-ENC');

    expect((await verifyBackup(file, { passphrase })).encrypted).toBe(true);
    await refused(verifyBackup(file, { passphrase: 'wrong' }), /passphrase is wrong/);
    await refused(verifyBackup(file), /encrypted: give its passphrase/);
    for (const at of [40, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[at] = tampered[at] ^ 0x01;
      await writeFile(path.join(dir, 'bad.enc'), tampered);
      await refused(verifyBackup(path.join(dir, 'bad.enc'), { passphrase }), /backup refused/);
    }
    await refused(restoreTenant(db.pool, { input: file, replace: true, passphrase: 'wrong' }), /passphrase is wrong/);
    const restored = await restoreTenant(other.pool, { input: file, as: 'encrypted', passphrase });
    expect(await rowsOf(other.pool, 'encrypted')).toEqual(acmeBefore);
    expect(restored.rows).toBe(AWKWARD.length + 50);
  });

  it('reads every table in one snapshot: rows committed during the backup are in none of them', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    const { Writable } = await import('node:stream');
    const chunks: Buffer[] = [];
    const output = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        if (!first) return callback();
        first = false;
        // The first bytes come after the snapshot was taken: now a "load" commits into both tables.
        void held.then(() => callback());
      },
    });
    const backingUp = backupTenant(db.pool, { tenant: 'acme', output, gzip: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { rows } = await db.pool.query<{ id: number }>(
      `insert into app.suppliers (tenant_id, name) values ('acme', 'during') returning id`,
    );
    await db.pool.query(`insert into app.products (tenant_id, sku, supplier_id) values ('acme', 'during', $1)`, [
      rows[0].id,
    ]);
    release();
    const result = await backingUp;
    expect(result.trailer.tables.map((t) => t.rows)).toEqual([AWKWARD.length, 50]);
    expect(Buffer.concat(chunks).toString('utf8')).not.toContain('during');
    await db.pool.query(`delete from app.products where tenant_id = 'acme' and sku = 'during'`);
    await db.pool.query(`delete from app.suppliers where tenant_id = 'acme' and name = 'during'`);
  });

  it('refuses a restore into tables that do not fit, listing every difference, and changes nothing', async () => {
    const file = path.join(dir, 'acme-misfit.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file });
    const misfit = await createTestDatabase();
    await misfit.pool.query('create schema app');
    await misfit.pool.query(
      `create table app.suppliers (tenant_id text not null, id bigint, name varchar(10), extra text not null)`,
    );
    await protectTable(misfit.pool, 'app.suppliers');
    const error = await restoreTenant(misfit.pool, { input: file }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgferryError);
    const message = (error as Error).message;
    expect(message).toMatch(/app\.suppliers: column id is bigint here, integer in the backup/);
    expect(message).toMatch(/app\.suppliers: column name is character varying\(10\) here, text in the backup/);
    expect(message).toMatch(/app\.suppliers: column extra \(text\) is not null without a default/);
    expect(message).toMatch(/app\.products: no such table/);
    const { rows } = await misfit.pool.query('select count(*)::int as n from ferry.tenants');
    expect(rows[0].n).toBe(0);
  });

  it('names what a file says in printable text: an escape sequence in it never reaches the terminal', async () => {
    const file = path.join(dir, 'acme-escape.pgferry');
    await backupTenant(db.pool, { tenant: 'acme', output: file, gzip: false });
    const text = (await readFile(file, 'utf8')).replace('"table":"products"', '"table":"pro\\u001b[2Jducts"');
    const hostile = path.join(dir, 'acme-hostile.pgferry');
    await writeFile(hostile, text);
    const error = await restoreTenant(other.pool, { input: hostile, as: 'hostile' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgferryError);
    expect((error as Error).message).toMatch(/no such table/);
    expect((error as Error).message).not.toContain('\x1b');
    expect((error as Error).message).toContain('\\u{1b}');
  });

  it('copies a tenant into another database in one stream, under another name', async () => {
    const { restore, backup } = await copyTenant(db.pool, { tenant: 'acme', to: other.url, as: 'copied' });
    expect(backup.rows).toBe(AWKWARD.length + 50);
    expect(restore.tenant).toBe('copied');
    expect(await rowsOf(other.pool, 'copied')).toEqual(acmeBefore);
    const { rows: audit } = await db.pool.query(
      `select details->>'to' as to from ferry.audit where command = 'tenant copy'`,
    );
    expect(audit).toHaveLength(1);
    expect(audit[0].to).toContain(other.name);
    await refused(copyTenant(db.pool, { tenant: 'acme', to: other.url, as: 'copied' }), /has rows already/);
    expect(await rowsOf(other.pool, 'copied')).toEqual(acmeBefore);
  });

  it('refuses a backup whose ids would nearly exhaust a sequence every tenant draws from, moving no sequence', async () => {
    await addTenant(db.pool, 'huge');
    await db.pool.query(
      `insert into app.suppliers (tenant_id, id, name) overriding system value values ('huge', 2147480000, 'far')`,
    );
    const file = path.join(dir, 'huge.pgferry');
    await backupTenant(db.pool, { tenant: 'huge', output: file });
    const { rows: seq } = await other.pool.query("select pg_get_serial_sequence('app.suppliers', 'id') as seq");
    const sequence = `select s.last_value, s.is_called from ${seq[0].seq} as s`;
    const before = (await other.pool.query(sequence)).rows;
    await refused(restoreTenant(other.pool, { input: file, as: 'huge_copy' }), /within 1% of its maximum 2147483647/);
    expect((await other.pool.query(sequence)).rows).toEqual(before);
    const { rows } = await other.pool.query(`select count(*)::int as n from ferry.tenants where slug = 'huge_copy'`);
    expect(rows[0].n).toBe(0);
    await db.pool.query(`delete from app.suppliers where tenant_id = 'huge'`);
  });

  it('purges a tenant: lists first, then deletes its rows, schema, role and catalog, keeps one audit line, leaves bob intact', async () => {
    const plan = await planPurge(db.pool, 'acme');
    expect(plan.filter((p) => p.kind === 'rows')).toEqual([
      { kind: 'rows', object: 'app.products', detail: '50 rows' },
      { kind: 'rows', object: 'app.suppliers', detail: `${AWKWARD.length} rows` },
    ]);
    expect(await rowsOf(db.pool, 'acme')).toEqual(acmeBefore);
    const { rows: roles } = await db.pool.query(`select role_name, schema_name from ferry.tenants where slug = 'acme'`);

    const result = await purgeTenant(db.pool, 'acme');
    expect(result.tables).toEqual([
      { table: 'app.products', rows: 50 },
      { table: 'app.suppliers', rows: AWKWARD.length },
    ]);
    const { rows: left } = await db.pool.query(
      `select (select count(*) from app.products where tenant_id = 'acme')::int as products,
              (select count(*) from app.suppliers where tenant_id = 'acme')::int as suppliers,
              (select count(*) from ferry.tenants where slug = 'acme')::int as tenants,
              (select count(*) from pg_roles where rolname = $1)::int as roles,
              (select count(*) from pg_namespace where nspname = $2)::int as schemas,
              (select count(*) from pg_policy where polname like '%acme%')::int as policies,
              (select count(*) from ferry.coordination_locks
               where subject in ('acme', $2) or subject like 'acme:%')::int as locks`,
      [roles[0].role_name, roles[0].schema_name],
    );
    expect(left).toEqual([{ products: 0, suppliers: 0, tenants: 0, roles: 0, schemas: 0, policies: 0, locks: 0 }]);
    expect(await rowsOf(db.pool, 'bob')).toEqual(bobBefore);
    const { rows: audit } = await db.pool.query(
      `select command, outcome, details from ferry.audit where tenant = 'acme'`,
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ command: 'tenant purge', outcome: 'purged' });
    expect(audit[0].details.tables).toEqual(result.tables);
    await refused(purgeTenant(db.pool, 'acme'), /unknown tenant 'acme'/);
    // The name is free again.
    await addTenant(db.pool, 'acme');
  });
});
