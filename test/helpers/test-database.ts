import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { afterAll, inject } from 'vitest';

import { dropDatabase } from '../../src/db/database.js';
import { databaseUrl, TEMPLATE_DATABASE } from '../global-setup.js';

export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  /** Runs fn on one connection, as the given role when set (SET ROLE). */
  withClient<T>(fn: (client: pg.PoolClient) => Promise<T>, role?: string): Promise<T>;
}

/**
 * Databases to drop after the test file. The hook is registered here, when the file imports
 * this module, rather than in createTestDatabase: that is mostly called from a beforeAll,
 * where a hook registered would never run (and the database would outlive the run).
 */
const toDrop: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const drop of toDrop.splice(0)) await drop();
});

/**
 * A database of its own for one test file, cloned from the migrated template, dropped after
 * the file. Its instance id is new, so its tenant roles don't collide with other files'.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `pgferry_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  // As openDatabase does: a dropped connection fails its query, not the process.
  pool.on('connect', (client) => client.on('error', () => {}));
  const instance = randomBytes(3).toString('hex');
  await pool.query(`update ferry.settings set instance_id = $1`, [instance]);

  toDrop.push(async () => {
    await pool.end();
    await dropDatabase(adminUrl, name, instance);
  });

  return {
    url,
    name,
    pool,
    async withClient(fn, role) {
      const client = await pool.connect();
      try {
        if (role) await client.query(`set role ${client.escapeIdentifier(role)}`);
        return await fn(client);
      } finally {
        if (role) await client.query('reset role').catch(() => {});
        client.release();
      }
    },
  };
}
