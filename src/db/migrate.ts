import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type pg from 'pg';

import { isDatabaseError, PgferryError } from '../errors.js';

/** sql/ of this package, from src/db or dist/db alike. */
export const SQL_DIR = fileURLToPath(new URL('../../sql', import.meta.url));
/** Numbered, forward-only files: tables, types, indexes, grants. */
export const MIGRATIONS_DIR = path.join(SQL_DIR, 'migrations');
/** One file a concern: every function defined once, re-applied when its file changes. */
export const FUNCTIONS_DIR = path.join(SQL_DIR, 'functions');

const MIGRATION_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface SqlFile {
  /** The file's name, e.g. `0002_loads.sql` or `promotion.sql`. */
  name: string;
  sql: string;
  sha256: string;
}

/** What one run of migrate() applied. */
export interface MigrateResult {
  /** Numbered migrations applied, in order. */
  migrations: string[];
  /** Function files (re-)applied: new or changed since they were last applied. */
  functions: string[];
}

function readSqlFile(dir: string, name: string): SqlFile {
  const sql = readFileSync(path.join(dir, name), 'utf8');
  return { name, sql, sha256: createHash('sha256').update(sql).digest('hex') };
}

/** sql/migrations/NNNN_<concern>.sql in order; a file named otherwise is an error, not skipped. */
export function readMigrations(dir = MIGRATIONS_DIR): SqlFile[] {
  const names = readdirSync(dir).sort();
  const wrong = names.filter((n) => !MIGRATION_NAME.test(n));
  if (wrong.length)
    throw new Error(`${dir}: ${wrong.join(', ')}: a migration is named NNNN_<concern>.sql (four digits, lower case)`);
  names.forEach((name, i) => {
    if (Number(MIGRATION_NAME.exec(name)![1]) !== i + 1)
      throw new Error(`${dir}: ${name} is migration ${i + 1} in order: numbers run 0001, 0002, ... without gaps`);
  });
  return names.map((name) => readSqlFile(dir, name));
}

/** sql/functions/*.sql, by name. */
export function readFunctionFiles(dir = FUNCTIONS_DIR): SqlFile[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.sql'))
    .sort()
    .map((name) => readSqlFile(dir, name));
}

/**
 * Installs or upgrades pgferry's schema, in one transaction under one lock:
 * 1. the numbered migrations not yet applied (one that was applied must not have changed);
 * 2. every function file that is new or changed since it was applied (its SHA-256 differs),
 *    or all of them when a migration ran. The files use `create or replace`; a removed or
 *    re-typed function is dropped by a numbered migration.
 *
 * A failure rolls back the whole run: a database is never left between two versions.
 *
 * @example
 *   const { migrations, functions } = await migrate(client);
 */
export async function migrate(client: pg.ClientBase): Promise<MigrateResult> {
  const migrations = readMigrations();
  const functionFiles = readFunctionFiles();
  // Up to date, the lock is not taken: every command migrates as it connects, and the lock's key
  // is a constant (it is taken before ferry.settings, and the secret of ferry.lock_key, may
  // exist), which a tenant's mapping could hold for as long as its statement runs. So it can
  // delay only an install or an upgrade, never a load.
  if (await upToDate(client, migrations, functionFiles)) return { migrations: [], functions: [] };
  await client.query('begin');
  try {
    // Transaction-scoped: released by the commit, also behind a transaction-pooling proxy.
    await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', ['pgferry:migrate']);
    const bookkept = await bookkeepingExists(client);
    // Only a new database needs CREATE on it: a role without it can still use an installed one.
    if (!bookkept)
      await client.query(`
      create schema if not exists ferry;
      create table if not exists ferry.schema_migrations (
        id         integer primary key,
        name       text not null unique,
        sha256     text not null,
        applied_at timestamptz not null default now()
      );
      create table if not exists ferry.schema_functions (
        name       text primary key,
        sha256     text not null,
        applied_at timestamptz not null default now()
      )`);
    const applied = await appliedMigrationCount(client, migrations);
    for (const [i, file] of migrations.entries()) {
      if (i < applied) continue;
      await applyFile(client, 'migrations', file);
      await client.query('insert into ferry.schema_migrations (id, name, sha256) values ($1, $2, $3)', [
        i + 1,
        file.name,
        file.sha256,
      ]);
    }
    const ranMigrations = migrations.slice(applied).map((f) => f.name);

    const { rows } = await client.query<{ name: string; sha256: string }>(
      'select name, sha256 from ferry.schema_functions',
    );
    const installed = new Map(rows.map((r) => [r.name, r.sha256]));
    const changed = functionFiles.filter((f) => ranMigrations.length > 0 || installed.get(f.name) !== f.sha256);
    if (changed.length) {
      // As pg_dump does: a function's body may name a function of a file applied after it.
      await client.query('set local check_function_bodies = off');
      for (const file of changed) {
        await applyFile(client, 'functions', file);
        await client.query(
          `insert into ferry.schema_functions (name, sha256) values ($1, $2)
           on conflict (name) do update set sha256 = excluded.sha256, applied_at = now()`,
          [file.name, file.sha256],
        );
      }
    }
    const removed = [...installed.keys()].filter((name) => !functionFiles.some((f) => f.name === name));
    if (removed.length) await client.query('delete from ferry.schema_functions where name = any ($1)', [removed]);
    await client.query('commit');
    return { migrations: ranMigrations, functions: changed.map((f) => f.name) };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

/** Whether the database has every migration and every function file as they are (read without the lock). */
async function upToDate(client: pg.ClientBase, migrations: SqlFile[], functionFiles: SqlFile[]): Promise<boolean> {
  if (!(await bookkeepingExists(client))) return false;
  if ((await appliedMigrationCount(client, migrations)) < migrations.length) return false;
  const { rows } = await client.query<{ name: string; sha256: string }>(
    'select name, sha256 from ferry.schema_functions',
  );
  const installed = new Map(rows.map((r) => [r.name, r.sha256]));
  return installed.size === functionFiles.length && functionFiles.every((f) => installed.get(f.name) === f.sha256);
}

/**
 * How many of the migrations the database has; refuses one whose applied migrations differ
 * from the files (edited after release) or that is newer than this pgferry.
 */
async function appliedMigrationCount(client: pg.ClientBase, migrations: SqlFile[]): Promise<number> {
  const { rows } = await client.query<{ id: number; name: string; sha256: string }>(
    'select id, name, sha256 from ferry.schema_migrations order by id',
  );
  for (const row of rows) {
    const file = migrations[row.id - 1];
    if (!file)
      throw new PgferryError(
        `the database has migration ${row.name}, which this pgferry does not know: it was installed by a newer pgferry`,
      );
    if (file.name !== row.name || file.sha256 !== row.sha256)
      throw new PgferryError(
        `sql/migrations/${file.name} differs from migration ${row.id} (${row.name}) as applied to the database: ` +
          'a released migration is never edited; add a new one',
      );
  }
  return rows.length;
}

/**
 * Whether pgferry's bookkeeping tables exist. A database installed by pgferry before the 0.1.0
 * baseline keeps postgres-migrations' bookkeeping in ferry.migrations instead; its history
 * was squashed away, so there is no path from it, and it is refused.
 */
async function bookkeepingExists(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ old: boolean; installed: boolean }>(
    `select to_regclass('ferry.migrations') is not null as old,
            to_regclass('ferry.schema_migrations') is not null as installed`,
  );
  if (rows[0].old)
    throw new PgferryError(
      'this database holds a pre-release pgferry schema that this version cannot upgrade: ' +
        'reinstall into a new database (or drop this one; for the embedded server, remove its .pgferry folder) ' +
        'and run `pgferry migrate`',
    );
  return rows[0].installed;
}

/** Runs one file; an error names the file and the line in it. */
async function applyFile(client: pg.ClientBase, dir: 'migrations' | 'functions', file: SqlFile): Promise<void> {
  try {
    await client.query(file.sql);
  } catch (error) {
    const position = isDatabaseError(error) && error.position ? Number(error.position) : undefined;
    const line = position ? file.sql.slice(0, position - 1).split('\n').length : undefined;
    throw new PgferryError(`sql/${dir}/${file.name}${line ? `:${line}` : ''}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
