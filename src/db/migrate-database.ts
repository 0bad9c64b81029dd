import type pg from 'pg';

import { recordAudit } from '../audit.js';
import { migrate, type MigrateResult } from './migrate.js';

/**
 * `pgferry migrate`: installs or upgrades pgferry's schema (see migrate()) on a connection of
 * the pool, and records in ferry.audit what it applied, if anything. Open the database with
 * `openDatabase({ migrate: false })` to see what this run applies.
 *
 * @example
 *   const db = await openDatabase({ migrate: false });
 *   const { migrations, functions } = await migrateDatabase(db.pool);
 */
export async function migrateDatabase(pool: pg.Pool): Promise<MigrateResult> {
  const client = await pool.connect();
  try {
    const applied = await migrate(client);
    if (applied.migrations.length || applied.functions.length) {
      await recordAudit(client, {
        command: 'migrate',
        outcome: 'applied',
        details: { migrations: applied.migrations, functions: applied.functions },
      });
    }
    return applied;
  } finally {
    client.release();
  }
}
