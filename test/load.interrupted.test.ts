// A load whose process is killed shows as `interrupted`, not as still running.
import { spawn } from 'node:child_process';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { listLoads } from '../src/catalog.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { statusOnceSettled } from './helpers/tenant-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let file: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool);
  productsMapping(dir);
  const lines = ['sku,name,price'];
  for (let i = 0; i < 300_000; i++) lines.push(`SKU-${i},"product ${i}, a long enough name",${i % 1000}.99`);
  file = writeFile(dir, 'big.csv', `${lines.join('\n')}\n`);
});

async function statusOf(loadId: number): Promise<string> {
  const { rows } = await db.pool.query('select ferry.load_status(l) as status from ferry.loads l where id = $1', [
    loadId,
  ]);
  return rows[0].status;
}

describe('interrupted loads', () => {
  it('a running load shows its step; once its process is killed, interrupted', async () => {
    const child = spawn(
      process.execPath,
      [path.resolve('bin/pgferry.js'), 'load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir],
      { env: { ...process.env, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const loadId = await new Promise<number>((resolve, reject) => {
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
        const match = /load (\d+) registered/.exec(stderr);
        if (match) resolve(Number(match[1]));
      });
      child.on('close', () => reject(new Error(`the load ended before it was registered: ${stderr}`)));
    });
    expect(await statusOf(loadId)).not.toBe('interrupted');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));

    // The server notices the closed connection within moments.
    expect(await statusOnceSettled(db.pool, loadId, 'interrupted')).toBe('interrupted');
    const [listed] = (await listLoads(db.pool, { tenant: 'acme' })).filter((l) => l.id === loadId);
    expect(listed.status).toBe('interrupted');
    const target = await db.pool.query('select count(*)::int as n from app.products');
    expect(target.rows[0].n).toBe(0);
  });
});
