// Point 13 of issue 25: `npx pgferry worker` stopped with SIGTERM left the real worker running.
import { execFileSync, spawn } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { cliEnv } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

let db: TestDatabase;
const started: number[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(() => {
  // Whatever this test started and is still there (the bug): stopped, by its own pid.
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

/** The processes under `pid`, with their command lines. */
function descendants(pid: number): { pid: number; args: string }[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line)!)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] }));
  const found: { pid: number; args: string }[] = [];
  const walk = (parent: number) => {
    for (const row of rows.filter((r) => r.ppid === parent)) {
      found.push(row);
      walk(row.pid);
    }
  };
  walk(pid);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npx pgferry worker', () => {
  it('SIGTERM to npx stops the real worker too', async () => {
    const env = cliEnv({ DATABASE_URL: db.url });
    const npx = spawn('npx', ['pgferry', 'worker', '--concurrency', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(npx.pid!);
    let out = '';
    npx.stdout.on('data', (d) => (out += d));
    npx.stderr.on('data', (d) => (out += d));
    await until(() => out.includes('worker ready'), 30_000);
    const real = descendants(npx.pid!).find((p) => /pgferry(\.js)? worker/.test(p.args) && /node/.test(p.args));
    expect(real, `the worker's process under npx: ${JSON.stringify(descendants(npx.pid!))}`).toBeDefined();
    started.push(real!.pid);

    npx.kill('SIGTERM');
    await until(() => !alive(real!.pid), 20_000).catch(() => {});
    expect(alive(real!.pid), `the worker (pid ${real!.pid}) still runs after npx was stopped; it said:\n${out}`).toBe(
      false,
    );
    expect(out).toMatch(/stopping/);
  });
});
