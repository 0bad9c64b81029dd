// A load killed at any moment (SIGKILL of its process) is finished by `resume`: the target ends
// exactly as an uninterrupted load leaves it, with the same counts, and nothing doubled.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import { beforeAll, describe, expect, it } from 'vitest';

import { addTenant } from '../src/index.js';
import { load } from '../src/load/load.js';
import { resume } from '../src/load/resume.js';
import type { LoadResult } from '../src/load/types.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import type { LoadUntilRequest } from './helpers/load-until.js';
import { runCli } from './helpers/run-cli.js';
import { rowsDifferingFrom, statusOnceSettled } from './helpers/tenant-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;
let file: string;
let reference: LoadResult;

const ROWS = 200_000;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['reference']);
  mapping = productsMapping(dir);
  // Some rows rejected, some duplicated, a broken line: resume must count them all once.
  const lines = ['sku,name,price'];
  for (let i = 0; i < ROWS; i++) {
    if (i % 1000 === 7) lines.push(`SKU-${i},"bad price",abc`);
    else if (i % 1000 === 8) lines.push(`SKU-${i - 1},"duplicate of the line before",1.5`);
    else if (i === 100_000) lines.push(`SKU-${i},"broken,line`);
    else lines.push(`SKU-${i},"product ${i}, with a comma",${i % 500}.25`);
  }
  file = writeFile(dir, 'catalog.csv', `${lines.join('\n')}\n`);
  reference = await load(db.pool, { file, tenant: 'reference', mapping, chunkRows: 20_000 });
  expect(reference.status).toBe('succeeded');
});

/** Runs a load in a child process that kills itself at `killAt`; resolves with the load id. */
function loadUntil(tenant: string, killAt: string, source = file): Promise<number | undefined> {
  const request: LoadUntilRequest = { url: db.url, file: source, tenant, mapping, chunkRows: 20_000, killAt };
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.resolve('test/helpers/load-until.ts'), JSON.stringify(request)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && !/finished/.test(out)) reject(new Error(`the load ended (${code}): ${err}`));
      const match = /registered (\d+)/.exec(out);
      resolve(match ? Number(match[1]) : undefined);
    });
  });
}

/** The tenant's rows that differ from the reference tenant's, both ways. */
const differences = (tenant: string) =>
  rowsDifferingFrom(db.pool, 'app.products', ['sku', 'name', 'price'], tenant, 'reference');

/** The load's rejects (step, line, rule) that the reference load has not, and the other way round. */
async function differingRejects(loadId: number): Promise<unknown[]> {
  const { rows } = await db.pool.query(
    `(select step, line, rule from ferry.rejects where load_id = $1
      except all
      select step, line, rule from ferry.rejects where load_id = $2)
     union all
     (select step, line, rule from ferry.rejects where load_id = $2
      except all
      select step, line, rule from ferry.rejects where load_id = $1)`,
    [loadId, reference.loadId],
  );
  return rows;
}

describe('resume after a crash', () => {
  it.each([
    ['stage-chunk', 'stage'],
    ['transform', 'stage'],
    ['mid-transform', 'stage'],
    ['promote', 'transform'],
  ])('killed at %s: resumes at %s, exactly as an uninterrupted load', async (killAt, expectedFrom) => {
    const tenant = `t_${killAt.replace('-', '_')}`;
    await addTenant(db.pool, tenant);
    const loadId = await loadUntil(tenant, killAt);
    expect(loadId).toBeDefined();
    // Interrupted once the server has noticed the dead process's connections.
    expect(await statusOnceSettled(db.pool, loadId!, 'interrupted')).toBe('interrupted');
    expect(await db.pool.query(`select 1 from app.products where tenant_id = $1`, [tenant])).toHaveProperty(
      'rowCount',
      0,
    );

    const resumed = await resume(db.pool, loadId!);
    expect(resumed.outcome).toBe('resumed');
    if (resumed.outcome !== 'resumed') return;
    expect(resumed.from).toBe(expectedFrom);
    expect(resumed.restaged).toBe(false);
    expect(resumed.result.status).toBe('succeeded');
    expect(resumed.result.counts).toEqual(reference.counts);
    expect(await differences(tenant)).toBe(0);
    expect(await differingRejects(loadId!)).toEqual([]);

    // Resuming again: it finished, nothing to do.
    expect(await resume(db.pool, loadId!)).toEqual({ outcome: 'finished', loadId, status: 'succeeded' });
  });

  it.each([
    ['stage-chunk', 'stage'],
    ['promote', 'transform'],
  ])(
    'killed at %s in a server crash (its UNLOGGED tables emptied): resumes at %s, stages again, as an uninterrupted load',
    async (killAt, expectedFrom) => {
      const tenant = `crash_${killAt.replace('-', '_')}`;
      await addTenant(db.pool, tenant);
      const loadId = await loadUntil(tenant, killAt);
      expect(loadId).toBeDefined();
      expect(await statusOnceSettled(db.pool, loadId!, 'interrupted')).toBe('interrupted');
      // What PostgreSQL's crash recovery does: every UNLOGGED table of the tenant's schema emptied.
      const { rows: unlogged } = await db.pool.query<{ name: string }>(
        `select format('%I.%I', n.nspname, c.relname) as name
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         join ferry.tenants t on t.schema_name = n.nspname
         where t.tenant_key = $1 and c.relkind = 'r' and c.relpersistence = 'u'`,
        [tenant],
      );
      expect(unlogged.map((r) => r.name).join(' ')).toContain(`stage_${loadId}`);
      await db.pool.query(`truncate ${unlogged.map((r) => r.name).join(', ')}`);
      expect((await db.pool.query('select ferry.staging_lost($1) as lost', [loadId])).rows[0].lost).toBe(true);

      const resumed = await resume(db.pool, loadId!);
      expect(resumed.outcome).toBe('resumed');
      if (resumed.outcome !== 'resumed') return;
      expect(resumed.from).toBe(expectedFrom);
      expect(resumed.restaged).toBe(true);
      expect(resumed.result.status).toBe('succeeded');
      expect(resumed.result.counts).toEqual(reference.counts);
      expect(await differences(tenant)).toBe(0);
      expect(await differingRejects(loadId!)).toEqual([]);
    },
  );

  it('a gzipped NDJSON file killed mid-staging resumes after its checkpoint, exactly as an uninterrupted load', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      lines.push(
        i % 5000 === 11
          ? `{"sku": "J-${i}", "name": broken}`
          : JSON.stringify({ sku: `J-${i}`, name: `json product ${i}`, price: `${i % 300}.5` }),
      );
    }
    const ndjson = writeFile(dir, 'catalog.ndjson.gz', gzipSync(`${lines.join('\n')}\n`));
    await addTenant(db.pool, 'json_reference');
    await addTenant(db.pool, 'json_resumed');
    const whole = await load(db.pool, { file: ndjson, tenant: 'json_reference', mapping, chunkRows: 20_000 });
    expect(whole.counts).toMatchObject({ read: 100_000, unparseable: 20 });

    const loadId = await loadUntil('json_resumed', 'stage-chunk', ndjson);
    expect(await statusOnceSettled(db.pool, loadId!, 'interrupted')).toBe('interrupted');
    const resumed = await resume(db.pool, loadId!);
    expect(resumed).toMatchObject({ outcome: 'resumed', from: 'stage' });
    if (resumed.outcome !== 'resumed') return;
    expect(resumed.checkpointLine).toBeGreaterThan(0);
    expect(resumed.result.counts).toEqual(whole.counts);
    expect(resumed.result.source).toMatchObject({ format: 'ndjson', compression: 'gzip' });
    expect(
      await rowsDifferingFrom(db.pool, 'app.products', ['sku', 'name', 'price'], 'json_resumed', 'json_reference'),
    ).toBe(0);
  });

  it('killed after its promotion committed: resume only tidies up, and exits 0', async () => {
    await addTenant(db.pool, 't_cleanup');
    const loadId = await loadUntil('t_cleanup', 'cleanup');
    expect(await differences('t_cleanup')).toBe(0);
    const cli = await runCli(['resume', String(loadId)], { env: { DATABASE_URL: db.url } });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/had already finished \(succeeded\): nothing to do/);
    const { rows } = await db.pool.query(`select count(*)::int as n from pg_tables where tablename like $1`, [
      `%\\_${loadId}`,
    ]);
    expect(rows[0].n).toBe(0);
  });

  it('refuses a running load, an unknown one, and a file changed since', async () => {
    await addTenant(db.pool, 't_refuse');
    const env = { DATABASE_URL: db.url };
    const unknown = await runCli(['resume', '999999'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no load 999999/);

    const copy = writeFile(dir, 'copy.csv', 'sku,name,price\nA,a,1\nB,b,2\n');
    const interrupted = await loadUntil('t_refuse', 'transform', copy);
    writeFile(dir, 'copy.csv', 'sku,name,price\nA,a,1\nB,b,3\n');
    const changed = await runCli(['resume', String(interrupted)], { env });
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/copy\.csv changed since load \d+ started/);

    let registered: (id: number) => void = () => {};
    const runningId = new Promise<number>((resolve) => (registered = resolve));
    const pending = load(db.pool, {
      file,
      tenant: 't_refuse',
      mapping,
      force: true,
      onEvent: (e) => {
        if (e.type === 'registered') registered(e.loadId);
      },
    });
    const running = await runningId;
    await expect(resume(db.pool, running)).rejects.toThrow(/in a running process: it cannot be resumed/);
    expect((await pending).status).toBe('succeeded');
  });
});
