// The CLI of syncs and the queue: sync, syncs, pause/unpause, load --queue, cancel, and a
// broken pgferry.yaml — through the shipped CLI, against the test server.
import { beforeAll, describe, expect, it } from 'vitest';

import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
const source: TestDatabase = await createTestDatabase();
let dir: string;
let project: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, ['acme']);
  productsMapping(dir);
  await source.pool.query(`create table items (sku text primary key, name text, price numeric, changed date);
    insert into items values ('K1', 'Kiwi', 1, '2026-05-01'), ('K2', 'Kale', 2, '2026-05-02')`);
  project = writeFile(
    dir,
    'pgferry.yaml',
    `mappings: .
syncs:
  kiwis:
    from: env:KIWI_SOURCE
    table: items
    cursor: changed
    tenant: acme
    mapping: products
    schedule: "0 3 * * *"
`,
  );
  env = { DATABASE_URL: db.url, KIWI_SOURCE: source.url };
});

describe('pgferry sync, syncs, pause, unpause', () => {
  it('runs an increment, lists the sync with its cursor and next run, pauses and unpauses it', async () => {
    const synced = await runCli(['sync', 'kiwis', '--project', project], { env });
    expect(synced.stderr).toMatch(/^load \d+ registered\n$/);
    expect(synced.code).toBe(0);
    expect(synced.stdout).toMatch(/sync kiwis: full pull/);
    expect(synced.stdout).toMatch(/cursor now 2026-05-02/);

    const listed = await runCli(['syncs', '--project', project, '--json'], { env });
    const [row] = JSON.parse(listed.stdout);
    expect(row).toMatchObject({ name: 'kiwis', cursor: '2026-05-02', lastOutcome: 'succeeded', paused: false });
    expect(new Date(row.nextRun).getUTCHours()).toBe(3);

    expect((await runCli(['pause', 'kiwis', '--project', project], { env })).stdout).toMatch(/paused/);
    const paused = await runCli(['syncs', '--project', project], { env });
    expect(paused.stdout).toMatch(/kiwis .* paused/);
    expect((await runCli(['unpause', 'kiwis', '--project', project], { env })).code).toBe(0);

    const again = await runCli(['sync', 'kiwis', '--project', project], { env });
    expect(again.stdout).toMatch(/rows with changed >= 2026-05-02/);
  });

  it('a broken pgferry.yaml: exit 2, naming the file and line', async () => {
    const broken = writeFile(
      dir,
      'broken.yaml',
      'syncs:\n  kiwis:\n    from: env:X\n    table: items\n    tenant: acme\n    mapping: products\n    mode: sideways\n',
    );
    const run = await runCli(['sync', 'kiwis', '--project', broken], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/broken\.yaml:7: sync kiwis: mode: append, upsert or mirror, not "sideways"/);
  });
});

describe('pgferry load --queue, cancel', () => {
  it('queues a load and prints its id at once; cancel cancels it while queued', async () => {
    const file = writeFile(dir, 'queued.csv', 'sku,name,price\nQ1,Quince,1\n');
    const queued = await runCli(['load', file, '-t', 'acme', '-m', 'products', '--mappings-dir', dir, '--queue'], {
      env,
    });
    expect(queued.code).toBe(0);
    const id = /load (\d+) queued/.exec(queued.stdout)![1];
    const status = await runCli(['status', id, '--json'], { env });
    expect(JSON.parse(status.stdout).status).toBe('queued');
    const cancelled = await runCli(['cancel', id], { env });
    expect(cancelled.stdout).toBe(`load ${id} cancelled\n`);
    expect((await runCli(['cancel', id], { env })).stdout).toMatch(/already ended: cancelled/);
  });
});
