import { fileURLToPath } from 'node:url';

import type pg from 'pg';
import { migrate as runMigrations } from 'postgres-migrations';

/** sql/migrations of this package, from src/db or dist/db alike. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../sql/migrations', import.meta.url));

/**
 * Installs or upgrades the `ferry` schema with postgres-migrations.
 *
 * postgres-migrations keeps its bookkeeping in a table named `migrations` found through the
 * search_path, and takes any table of that name in any schema as its own (graphile-worker
 * has one). So the table is created in schema `ferry` first and the migrations run with
 * `search_path = ferry`.
 *
 * @example
 *   await migrate(client);
 */
export async function migrate(client: pg.ClientBase): Promise<string[]> {
  await client.query('select pg_advisory_lock(hashtextextended($1, 0))', ['pgferry:migrate']);
  try {
    await client.query(`create schema if not exists ferry`);
    await client.query(`
      create table if not exists ferry.migrations (
        id integer primary key,
        name varchar(100) unique not null,
        hash varchar(40) not null,
        executed_at timestamp default current_timestamp
      )`);
    const { rows } = await client.query<{ search_path: string }>('show search_path');
    await client.query('set search_path = ferry');
    try {
      const applied = await runMigrations({ client: client as pg.Client }, MIGRATIONS_DIR);
      return applied.map((m) => m.name);
    } finally {
      await client.query(`select set_config('search_path', $1, false)`, [rows[0].search_path]);
    }
  } finally {
    await client.query('select pg_advisory_unlock(hashtextextended($1, 0))', ['pgferry:migrate']);
  }
}
