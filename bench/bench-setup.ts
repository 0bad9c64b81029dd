// What both benchmarks (bench/run.ts, bench/formats.ts) need: a database with the ferry schema,
// the benchmark's target protected for its tenant, and a pgferry load run in a child process.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type pg from 'pg';

import { addTenant, ensureDatabase, listTenants, migrate, protectTable } from '../src/index.js';
import { runCommand, tail } from './commands.js';
import type { ChildReport, ChildRequest } from './load-child.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(HERE);
export const DATA_DIR = path.join(HERE, 'data');
export const MAPPING = path.join(HERE, 'catalog.sql');
export const TENANT = 'bench';
export const TARGET = 'bench.products';
const SCHEMA = path.join(HERE, 'schema.sql');

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
