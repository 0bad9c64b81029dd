import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** PgBouncer's pool modes: how long a client keeps the server connection it was given. */
export type PoolMode = 'session' | 'transaction' | 'statement';

export interface RunningPgbouncer {
  /** The URL of `serverUrl`'s database `database`, through the pooler in `mode`. */
  url(database: string, mode: PoolMode): string;
  /** What PgBouncer logged so far, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The pgbouncer binary (Debian's package puts it in /usr/sbin), or undefined. */
export function findPgbouncer(): string | undefined {
  const found = CANDIDATES.find((file) => existsSync(file));
  if (found) return found;
  const which = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() || undefined : undefined;
}

/**
 * Starts PgBouncer in front of the server of `serverUrl`, on a free local port, as a child
 * process with its config in a temporary folder. Each database `db` is offered three times,
 * as `db__session`, `db__transaction` and `db__statement`, one per pool mode. It logs in to
 * the server as the client did, with the password of the URLs given (`users`): scram-sha-256
 * when they have one, trust when not (a server with trust authentication, such as CI's).
 */
export async function startPgbouncer(options: {
  binary: string;
  serverUrl: string;
  databases: string[];
  /** URLs whose user and password clients log in with. */
  users: string[];
}): Promise<RunningPgbouncer> {
  const server = new URL(options.serverUrl);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgferry-pgbouncer-'));
  // As root PgBouncer runs as another user (-u), who must be able to read its config.
  chmodSync(dir, 0o755);
  const port = await freePort();

  const credentials = new Map<string, string>();
  for (const u of options.users) {
    const url = new URL(u);
    credentials.set(decodeURIComponent(url.username || 'postgres'), decodeURIComponent(url.password));
  }
  const withPasswords = [...credentials.values()].every((password) => password !== '');
  const quote = (text: string) => `"${text.replaceAll('"', '""')}"`;
  const authFile = path.join(dir, 'userlist.txt');
  writeFileSync(authFile, [...credentials].map(([user, password]) => `${quote(user)} ${quote(password)}\n`).join(''), {
    mode: 0o644,
  });

  // localhost may resolve to ::1 first, where a server listening on 127.0.0.1 is not.
  const host = server.hostname.replace(/^\[(.*)\]$/, '$1').replace(/^(localhost)?$/, '127.0.0.1');
  const databases = options.databases.flatMap((db) =>
    (['session', 'transaction', 'statement'] as const).map(
      (mode) => `${db}__${mode} = host=${host} port=${server.port || 5432} dbname=${db} pool_mode=${mode}`,
    ),
  );
  const config = path.join(dir, 'pgbouncer.ini');
  writeFileSync(
    config,
    `[databases]
${databases.join('\n')}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = ${withPasswords ? 'scram-sha-256' : 'trust'}
auth_file = ${authFile}
pool_mode = session
default_pool_size = 20
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = prefer
logfile =
pidfile =
`,
    { mode: 0o644 },
  );

  const args = [config];
  if (process.getuid?.() === 0) args.unshift('-u', runAsUser());
  const child: ChildProcess = spawn(options.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitForPort(port, () => child.exitCode !== null || child.signalCode !== null);
  } catch (error) {
    await stop();
    throw new Error(`pgbouncer did not start: ${(error as Error).message}\n${output}`, { cause: error });
  }

  return {
    url(database, mode) {
      const url = new URL(options.serverUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      url.pathname = `/${database}__${mode}`;
      return url.toString();
    },
    log: () => output,
    stop,
  };
}

/** The user PgBouncer runs as when started by root (it refuses to run as root). */
function runAsUser(): string {
  for (const user of ['postgres', 'nobody']) {
    if (spawnSync('id', ['-u', user]).status === 0) return user;
  }
  return 'nobody';
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, gone: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (gone()) throw new Error('it exited');
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on port ${port} after 10 s`);
}
