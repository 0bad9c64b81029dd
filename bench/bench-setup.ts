// What the benchmarks (bench/run.ts, bench/formats.ts, bench/sync.ts) need: a server, a
// database with the ferry schema, the benchmark's target protected for its tenant, and a
// pgferry load run in a child process.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type pg from 'pg';

import {
  addTenant,
  type EmbeddedServer,
  ensureDatabase,
  listTenants,
  migrate,
  protectTable,
  startEmbeddedServer,
} from '../src/index.js';
import { runCommand, tail } from './commands.js';
import type { ChildReport, ChildRequest } from './load-child.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(HERE);
export const DATA_DIR = path.join(HERE, 'data');
export const MAPPING = path.join(HERE, 'catalog.sql');
export const TENANT = 'bench';
export const TARGET = 'bench.products';
const SCHEMA = path.join(HERE, 'schema.sql');

/** Where a benchmark runs, and how it lets go of it. */
export interface BenchServer {
  /** The server given, or database pgferry_bench of the embedded one. */
  url: string;
  embedded: boolean;
  /** A scratch folder of the run's own. */
  tmp: string;
  /** Stops the embedded server and removes the scratch folder. */
  close(): Promise<void>;
}

/**
 * The server given (--database-url), or else an embedded PostgreSQL in a temporary folder.
 * close() stops it and removes the folder; Ctrl-C does too, at any point.
 */
export async function openBenchServer(
  name: string,
  databaseUrl: string | undefined,
  log: (line: string) => void,
): Promise<BenchServer> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), `pgferry-bench-${name}-`));
  let server: EmbeddedServer | undefined;
  const close = async () => {
    process.off('SIGINT', onInterrupt);
    await server?.stop().catch((error: unknown) => console.error(`could not stop the embedded server: ${error}`));
    server = undefined;
    await rm(tmp, { recursive: true, force: true });
  };
  const onInterrupt = () => {
    console.error('\ninterrupted: stopping the server');
    void close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onInterrupt);
  if (databaseUrl) return { url: databaseUrl, embedded: false, tmp, close };
  try {
    // As root the embedded server runs as the postgres OS user: it must reach the folder.
    await chmod(tmp, 0o755);
    log(`starting an embedded PostgreSQL in ${tmp}`);
    server = await startEmbeddedServer({ dir: path.join(tmp, 'server') });
    return { url: await createDatabase(server.url, 'pgferry_bench'), embedded: true, tmp, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The URL of database `name` on a server (created if missing). */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  await ensureDatabase(serverUrl, name);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The ferry schema, the benchmark's tables, its tenant, and the target protected. */
export async function setUp(pool: pg.Pool): Promise<void> {
  const client = await pool.connect().catch((error: unknown) => {
    throw new Error(`cannot connect to the benchmark's server: ${(error as Error).message}`, { cause: error });
  });
  try {
    await migrate(client);
    await client.query(await readFile(SCHEMA, 'utf8'));
  } finally {
    client.release();
  }
  if (!(await listTenants(pool)).some((t) => t.slug === TENANT)) await addTenant(pool, TENANT);
  await protectTable(pool, TARGET);
}

/** One pgferry load (or the baseline) in a child process of its own: its time and peak RSS. */
export async function runChild(request: ChildRequest): Promise<ChildReport> {
  const child = path.join(HERE, 'load-child.ts');
  const result = await runCommand(process.execPath, ['--import', 'tsx', child, JSON.stringify(request)], {
    cwd: ROOT,
    measureMemory: false,
  });
  const last = result.stdout.trim().split('\n').pop() ?? '';
  if (result.code !== 0 || !last.startsWith('{')) {
    throw new Error(`the pgferry child process failed (exit ${result.code}):\n${tail(result.stderr, 10)}`);
  }
  return JSON.parse(last) as ChildReport;
}
