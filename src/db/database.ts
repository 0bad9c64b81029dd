import pg from 'pg';

import { type ConnectionSettings, connectionSettings } from './connection-config.js';
import { type EmbeddedServer, startEmbeddedServer } from './embedded-server.js';
import { migrate } from './migrate.js';
import { requireSessionPooling } from './pooler-mode.js';
import { connectWithTlsFallback } from './tls-fallback.js';

/** The server pgferry works on, and how to let go of it. */
export interface Database {
  readonly pool: pg.Pool;
  /** Where the connection came from: `DATABASE_URL`, `PG* variables` or `embedded (DIR)`. */
  readonly origin: string;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Connection string; overrides the environment. */
  url?: string;
  /** Folder of the embedded server. (Default: `$PGFERRY_HOME` or `.pgferry`) */
  embeddedDir?: string;
  /** Install or upgrade the ferry schema. (Default: true) */
  migrate?: boolean;
  /**
   * Refuse a connection through a pooler in transaction or statement mode (see
   * detectPoolerMode), before anything is written. (Default: true; the embedded server has
   * no pooler and is not asked)
   */
  requireSession?: boolean;
  env?: NodeJS.ProcessEnv;
}

const PG_ENV = ['PGHOST', 'PGPORT', 'PGDATABASE', 'PGUSER', 'PGSERVICE'];
const EMBEDDED_DATABASE = 'pgferry';

// bigint counts and ids as numbers: they stay far below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Connects to the server named by `DATABASE_URL` (or the `PG*` variables), or else starts the
 * embedded PostgreSQL, and installs the schema.
 *
 * @example
 *   const db = await openDatabase();
 *   try { ... db.pool ... } finally { await db.close(); }
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  const env = options.env ?? process.env;
  let server: EmbeddedServer | undefined;
  let settings: ConnectionSettings;
  let origin: string;
  if (options.url ?? env.DATABASE_URL) {
    settings = connectionSettings({ url: options.url ?? env.DATABASE_URL, env });
    origin = options.url ? 'connection string' : 'DATABASE_URL';
  } else if (PG_ENV.some((name) => env[name])) {
    settings = connectionSettings({ env });
    origin = 'PG* variables';
  } else {
    const dir = options.embeddedDir ?? env.PGFERRY_HOME ?? '.pgferry';
    server = await startEmbeddedServer({ dir });
    await ensureDatabase(server.url, EMBEDDED_DATABASE);
    const url = new URL(server.url);
    url.pathname = `/${EMBEDDED_DATABASE}`;
    // It listens on 127.0.0.1 alone and has no certificate.
    url.searchParams.set('sslmode', 'disable');
    settings = connectionSettings({ url: url.toString(), env: {} });
    origin = `embedded PostgreSQL (${dir})`;
  }

  let pool: pg.Pool;
  try {
    // The first connection tells a TLS problem in one line, and settles `prefer` and `allow`:
    // the pool's options (which other pools and clients copy) are the way that worked.
    let client: pg.PoolClient;
    ({ pool, client } = await connectWithTlsFallback(settings, async (config) => {
      const pool = newPool(config);
      try {
        return { pool, client: await pool.connect() };
      } catch (error) {
        await pool.end();
        throw error;
      }
    }));
    try {
      if (!server && options.requireSession !== false) await requireSessionPooling(pool);
      if (options.migrate !== false) await migrate(client);
    } catch (error) {
      client.release();
      await pool.end();
      throw error;
    }
    client.release();
  } catch (error) {
    await server?.stop();
    throw error;
  }
  return {
    pool,
    origin,
    close: async () => {
      await pool.end();
      await server?.stop();
    },
  };
}

function newPool(config: pg.ClientConfig): pg.Pool {
  // Room for a load's parallel COPY streams (up to 8) and one more. The URL's
  // application_name wins, as it did when pg read the URL.
  const pool = new pg.Pool({ application_name: 'pgferry', ...config, max: 10, types });
  // A connection dropped by the server (a restart) must not crash the process: idle, the pool
  // drops it; checked out, the query running on it fails, and the load's retries take over.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Creates database `name` on the server of `serverUrl` unless it exists. */
export async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Drops database `name` of the server of `serverUrl` (its sessions closed), then the roles its
 * pgferry instance made (pgf_<instance>_…): roles belong to the server, not the database, and
 * would pile up on one that is reused (CI's). The instance is read from the database itself
 * (its ferry.settings) as well as taken from `instance`, the one a caller may have set. For
 * databases made for one run; `pgferry uninstall` is what removes pgferry from a database that
 * stays. Throws, naming them, when roles of the instance remain.
 */
export async function dropDatabase(serverUrl: string, name: string, instance?: string): Promise<void> {
  const instances = new Set(instance ? [instance] : []);
  const own = await readInstance(serverUrl, name);
  if (own) instances.add(own);
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists ${client.escapeIdentifier(name)} with (force)`);
    const failed: string[] = [];
    for (const prefix of [...instances].map((i) => `pgf_${i}_`)) {
      // The group last: its members first.
      const { rows } = await client.query<{ role: string }>(
        `select rolname as role from pg_roles where left(rolname, length($1)) = $1
         order by right(rolname, 9) = '__tenants', rolname`,
        [prefix],
      );
      for (const { role } of rows) {
        await client.query(`drop role if exists ${client.escapeIdentifier(role)}`).catch((error: Error) => {
          failed.push(`${role} (${error.message})`);
        });
      }
    }
    if (failed.length) throw new Error(`dropDatabase ${name}: roles left behind: ${failed.join('; ')}`);
  } finally {
    await client.end();
  }
}

/** The pgferry instance id of database `name`; undefined when it has none, or is gone. */
async function readInstance(serverUrl: string, name: string): Promise<string | undefined> {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  try {
    await client.connect();
    const { rows: found } = await client.query(`select to_regclass('ferry.settings') is not null as ok`);
    if (!found[0].ok) return undefined;
    const { rows } = await client.query<{ id: string }>('select instance_id as id from ferry.settings');
    return rows[0]?.id ?? undefined;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * What SQL run in a session may leave behind, reset: `discard all` (settings, role, cursors,
 * LISTENs, advisory locks, temporary objects, sequence state) but for the prepared statements
 * of the wire protocol, which belong to the client (graphile-worker prepares its own on the
 * pool it shares with the worker's loads). Those made with SQL's PREPARE go too.
 */
const RESET_SESSION = `close all;
set session authorization default;
reset all;
unlisten *;
select pg_advisory_unlock_all();
discard plans;
discard temp;
discard sequences;
do $$
declare
  v_name text;
begin
  for v_name in select name from pg_prepared_statements where from_sql loop
    execute format('deallocate %I', v_name);
  end loop;
end
$$`;

/**
 * Runs `fn` in a transaction on one connection of the pool. With `tenantCode`, the connection
 * ran SQL a tenant wrote (a mapping): it is reset (RESET_SESSION) before it goes back to the
 * pool, so that nothing that SQL left in the session outlives it. (Closing it instead cost a
 * new connection for each step: about 8 ms each with SCRAM authentication.)
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: { tenantCode?: boolean } = {},
): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (error) {
    failed = true;
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    // After a failure the connection may be broken (a lost server): closed, not pooled. So is
    // one that could not be reset.
    const reusable = !failed && (!options.tenantCode || (await resetSession(client)));
    client.release(!reusable);
  }
}

async function resetSession(client: pg.PoolClient): Promise<boolean> {
  try {
    await client.query(RESET_SESSION);
    return true;
  } catch {
    return false;
  }
}
