// `pgferry dashboard` as a user starts it: it says where it listens, answers, stops on Ctrl-C;
// beyond loopback without a token it refuses to start, in one line.
import { spawn } from 'node:child_process';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { cliEnv, runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

describe('pgferry dashboard', () => {
  it('serves the page and the API on loopback until SIGINT', async () => {
    const child = spawn(process.execPath, [path.resolve('bin/pgferry.js'), 'dashboard', '--port', '0'], {
      env: cliEnv({ DATABASE_URL: db.url }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await until(() => /dashboard at (\S+)/.test(stdout) || child.exitCode !== null, 20_000);
      const url = /dashboard at (http:\/\/127\.0\.0\.1:\d+\/) \(read-only\)/.exec(stdout)?.[1];
      expect(url, stderr).toBeDefined();
      const page = await fetch(url!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script src="/assets/dashboard.js"');
      const loads = await fetch(new URL('/api/loads', url));
      expect(await loads.json()).toEqual([]);
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(0);
    expect(stdout).toContain('dashboard stopped');
  });

  it('refuses to listen beyond loopback without PGFERRY_DASHBOARD_TOKEN', async () => {
    const run = await runCli(['dashboard', '--host', '0.0.0.0', '--port', '0'], { env: { DATABASE_URL: db.url } });
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')[0]).toBe(
      'pgferry: the dashboard listens on 0.0.0.0, beyond this machine, only with a token',
    );
    expect(run.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });
});
