// How pgferry installs its schema: numbered migrations (tables), function files re-applied
// when they change, one transaction, and the whole installed schema as reviewed in
// docs/schema.sql.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';

import { dumpSchema, SCHEMA_DUMP_COMMAND, SCHEMA_FILE } from '../scripts/schema-dump.js';
import { dropDatabase } from '../src/db/database.js';
import { FUNCTIONS_DIR, migrate, readFunctionFiles, readMigrations } from '../src/db/migrate.js';
import { PgferryError } from '../src/errors.js';
import { databaseUrl } from './global-setup.js';
import { createTestDatabase } from './helpers/test-database.js';
import { withClient } from './helpers/with-client.js';

const db = await createTestDatabase();

/** A new, empty database of the test server, dropped when fn ends. */
async function withEmptyDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const adminUrl = inject('adminUrl');
  const name = `pgferry_empty_${Math.random().toString(16).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`).finally(() => admin.end());
  try {
    return await fn(databaseUrl(adminUrl, name));
  } finally {
    await dropDatabase(adminUrl, name, 'none');
  }
}

describe('sql/', () => {
  it('has exactly the migrations this test pins (a new migration updates this list and docs/schema.sql)', async () => {
    const names = readMigrations().map((f) => f.name);
    expect(names).toEqual([
      '0001_catalog.sql',
      '0002_loads.sql',
      '0003_syncs.sql',
      '0004_plans.sql',
      '0005_protect_rls_before.sql',
      '0006_lock_secret.sql',
      '0007_load_claim_epoch.sql',
      '0008_coordination_locks.sql',
      '0009_duplicates.sql',
      '0010_tenant_restores.sql',
      '0011_load_fast_path.sql',
    ]);
    const { rows } = await db.pool.query('select id, name from ferry.schema_migrations order by id');
    expect(rows.map((r) => r.name)).toEqual(names);
  });

  it('defines every function exactly once, in sql/functions/, with create or replace', () => {
    const where = new Map<string, string[]>();
    for (const file of readFunctionFiles()) {
      for (const m of file.sql.matchAll(/^\s*create\s+(or\s+replace\s+)?function\s+([a-z_."]+)\s*\(/gim)) {
        expect(
          m[1],
          `${file.name}: ${m[2]} must be created with "create or replace" (the file is re-applied)`,
        ).toBeTruthy();
        const name = m[2].replaceAll('"', '');
        where.set(name, [...(where.get(name) ?? []), file.name]);
      }
    }
    for (const file of readMigrations())
      expect(file.sql, `${file.name} defines a function: functions live in sql/functions/`).not.toMatch(
        /^\s*create\s+(or\s+replace\s+)?function/im,
      );
    const twice = [...where].filter(([, files]) => files.length > 1);
    expect(twice).toEqual([]);
    expect(where.size).toBeGreaterThan(50);
    expect(path.basename(FUNCTIONS_DIR)).toBe('functions');
  });

  it(`installs exactly the schema in docs/schema.sql (after a change to sql/: ${SCHEMA_DUMP_COMMAND})`, async () => {
    const installed = await db.withClient((client) => dumpSchema(client));
    const reviewed = readFileSync(SCHEMA_FILE, 'utf8');
    if (installed !== reviewed)
      expect.fail(
        `the installed schema differs from docs/schema.sql: run \`${SCHEMA_DUMP_COMMAND}\` and review the diff`,
      );
  });
});

describe('migrate', () => {
  it('changes nothing on a database that is up to date', async () => {
    const result = await db.withClient((client) => migrate(client));
    expect(result).toEqual({ migrations: [], functions: [] });
  });

  it('re-applies a function file whose content changed since it was applied, and only that one', async () => {
    await db.pool.query(`update ferry.schema_functions set sha256 = 'changed' where name = 'promotion.sql'`);
    const result = await db.withClient((client) => migrate(client));
    expect(result).toEqual({ migrations: [], functions: ['promotion.sql'] });
    const { rows } = await db.pool.query(`select sha256 from ferry.schema_functions where name = 'promotion.sql'`);
    expect(rows[0].sha256).toBe(readFunctionFiles().find((f) => f.name === 'promotion.sql')!.sha256);
  });

  it('forgets a function file that is gone (its functions are dropped by a migration)', async () => {
    await db.pool.query(`insert into ferry.schema_functions (name, sha256) values ('gone.sql', 'x')`);
    const result = await db.withClient((client) => migrate(client));
    expect(result).toEqual({ migrations: [], functions: [] });
    const { rows } = await db.pool.query(`select name from ferry.schema_functions where name = 'gone.sql'`);
    expect(rows).toEqual([]);
  });

  it('refuses a database whose applied migration differs from its file', async () => {
    await db.pool.query(`update ferry.schema_migrations set sha256 = 'edited' where id = 2`);
    try {
      const error = await db.withClient((client) => migrate(client)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PgferryError);
      expect((error as Error).message).toMatch(/0002_loads\.sql differs from migration 2 .* never edited/);
    } finally {
      await db.pool.query(`update ferry.schema_migrations set sha256 = $1 where id = 2`, [readMigrations()[1].sha256]);
    }
  });

  it('installs a new database whole, also when two processes start at once', async () => {
    await withEmptyDatabase(async (url) => {
      const results = await Promise.all([1, 2].map(() => withClient(url, (client) => migrate(client))));
      const all = readMigrations().map((f) => f.name);
      // One installed everything; the other, waiting on the lock, found nothing left to do.
      expect(results.map((r) => r.migrations).sort((a, b) => a.length - b.length)).toEqual([[], all]);
      const installed = await withClient(url, (client) => dumpSchema(client));
      expect(installed).toBe(readFileSync(SCHEMA_FILE, 'utf8'));
    });
  });

  it('rolls back the whole run when a file fails: nothing is left half-installed', async () => {
    await withEmptyDatabase(async (url) => {
      await withClient(url, async (client) => {
        // A table of the name a migration creates makes that migration fail.
        await client.query('create schema ferry; create table ferry.plan_runs (id int)');
        const error = await migrate(client).catch((e: unknown) => e);
        expect((error as Error).message).toMatch(
          /^sql\/migrations\/0004_plans\.sql(:\d+)?: relation "plan_runs" already exists/,
        );
        const { rows } = await client.query(
          `select to_regclass('ferry.schema_migrations') as t, to_regclass('ferry.loads') as l`,
        );
        expect(rows[0]).toEqual({ t: null, l: null });
      });
    });
  });

  it('refuses, in one line saying how to reinstall, a database installed by the pre-release history', async () => {
    await withEmptyDatabase(async (url) => {
      await withClient(url, async (client) => {
        // What postgres-migrations left in such a database.
        await client.query(`create schema ferry;
          create table ferry.migrations (id integer primary key, name varchar(100) unique not null,
                                         hash varchar(40) not null, executed_at timestamp default current_timestamp)`);
        const error = await migrate(client).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PgferryError);
        expect((error as Error).message).not.toContain('\n');
        expect((error as Error).message).toMatch(/pre-release pgferry schema .* reinstall into a new database/);
      });
    });
  });
});
