// The database the crash and fault harnesses load into: pgferry installed, the bench's
// products table protected, a reference tenant and one tenant per run. On a server given by
// URL, or on an embedded server of its own, which the fault harness may then restart; there
// it runs as a LOGIN CREATEROLE CREATEDB role, as on a managed service, not as the superuser.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { dropDatabase } from '../src/db/database.js';
import { addTenant, ensureDatabase, migrate, protectTable } from '../src/index.js';
import { type RestartableServer, startRestartableServer } from '../test/helpers/restartable-server.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export interface HarnessDatabase {
  /** A pool on the harness's database. */
  pool: pg.Pool;
  /** That database's URL. */
  url: string;
  /** Restarts the server: only when it is the harness's own. */
  restart?: RestartableServer['restart'];
  /** Drops the database and the tenant roles, and stops the server if it is the harness's own. */
  close(): Promise<void>;
}

/** A pool that outlives terminated connections and restarts: a lost client is just dropped. */
export function harnessPool(url: string, name: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: name });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

export async function openHarnessDatabase(options: {
  /** crash or fault: names the database and the embedded server's folder. */
  harness: string;
  tenants: string[];
  databaseUrl?: string;
}): Promise<HarnessDatabase> {
  let server: RestartableServer | undefined;
  let adminUrl = options.databaseUrl;
  if (!adminUrl) {
    server = await startRestartableServer(options.harness);
    adminUrl = await managedLikeRole(server.url);
  }
  const dbName = `pgferry_${options.harness}_${process.pid}`;
  // The tenant roles of this run are named after it (pgf_<instance>_<tenant>), and dropped at the end.
  const instance = randomBytes(3).toString('hex');
  await ensureDatabase(adminUrl, dbName);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const pool = harnessPool(url.toString(), `pgferry-${options.harness}-harness`);
  const close = async () => {
    await pool.end();
    await dropDatabase(adminUrl, dbName, instance).catch(() => {});
    await server?.stop();
  };
  try {
    const client = await pool.connect();
    await migrate(client);
    client.release();
    await pool.query(readFileSync(path.join(ROOT, 'bench', 'schema.sql'), 'utf8'));
    // The instance id makes tenant role names unique to this database.
    await pool.query(`update ferry.settings set instance_id = $1`, [instance]);
    await addTenant(pool, 'reference');
    for (const tenant of options.tenants) await addTenant(pool, tenant);
    await protectTable(pool, 'bench.products');
  } catch (error) {
    await close();
    throw error;
  }
  return { pool, url: url.toString(), restart: server?.restart, close };
}

/** Makes a LOGIN CREATEROLE CREATEDB role on a server of the harness's own; returns its URL. */
async function managedLikeRole(superuserUrl: string): Promise<string> {
  const password = randomBytes(12).toString('hex');
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    await client.query(`create role pgferry_harness login createrole createdb password '${password}'`);
  } finally {
    await client.end();
  }
  const url = new URL(superuserUrl);
  url.username = 'pgferry_harness';
  url.password = password;
  return url.toString();
}
