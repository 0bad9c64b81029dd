// A fleet: three `pgferry worker` processes share one queue of 30 loads for 10 tenants, and one
// of them is killed (SIGKILL) in the middle of a promotion. Every load must end exactly once,
// succeeded; a tenant's loads into its table must promote one after another, in the order they
// were queued; the killed worker's load must be taken over and resumed by another worker.
import type { ChildProcess } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { loadCounts } from '../src/load/load-counts.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { int, prng } from './helpers/prng.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { isRunning, startWorkerChild, type WorkerChild } from './helpers/worker-child.js';

const TENANTS = Array.from({ length: 10 }, (_, i) => `fleet_${i}`);
const LOADS_PER_TENANT = 3;
const ROWS = 2500;
/** Keys a tenant's files draw from: its loads overlap, so their order decides the final rows. */
const KEYS_PER_TENANT = 3000;
/** The load whose promotion is slowed (its marker row sleeps), so that the kill lands inside it. */
const VICTIM = { tenant: 'fleet_3', index: 0 };
const SLOW_MS = 3000;

const db: TestDatabase = await createTestDatabase();
let dir: string;

interface Row {
  name: string;
  price: string;
}
type Counts = Awaited<ReturnType<typeof loadCounts>>;

/** One queued file of a tenant, and what it must do applied after the tenant's earlier ones. */
interface QueuedFile {
  tenant: string;
  index: number;
  file: string;
  expected: Counts;
  loadId?: number;
}

/** Each tenant's rows once all its files are applied in queue order. */
const finalRows = new Map<string, Map<string, Row>>();
const files: QueuedFile[] = [];

/**
 * A deterministic file of a tenant: keys from its pool (some repeated within the file: the
 * last wins), a few rows whose price is not a number (rejected), and some rows that repeat
 * what the tenant already has (unchanged). Applies it to `rows` and returns its counts.
 */
function generateFile(tenant: string, index: number, rows: Map<string, Row>): { csv: string; counts: Counts } {
  const rand = prng(1000 * TENANTS.indexOf(tenant) + index + 1);
  const lines = ['sku,name,price'];
  const winners = new Map<string, Row>();
  let valid = 0;
  let rejected = 0;
  for (let i = 0; i < ROWS; i++) {
    if (rand() < 0.01) {
      lines.push(`BAD${index}_${i},broken ${i},not-a-price`);
      rejected++;
      continue;
    }
    const sku = `K${int(rand, KEYS_PER_TENANT)}`;
    const had = rows.get(sku);
    const row =
      had && rand() < 0.3
        ? had
        : { name: `${tenant} load ${index} line ${i}`, price: (int(rand, 100_000) / 100).toFixed(2) };
    lines.push(`${sku},${row.name},${row.price}`);
    winners.set(sku, row);
    valid++;
  }
  if (tenant === VICTIM.tenant && index === VICTIM.index) {
    lines.push('SLOW,slow,1.00');
    winners.set('SLOW', { name: 'slow', price: '1.00' });
    valid++;
  }
  const counts: Counts = {
    read: lines.length - 1,
    staged: lines.length - 1,
    unparseable: 0,
    rejected,
    duplicates: valid - winners.size,
    inserted: 0,
    updated: 0,
    unchanged: 0,
  };
  for (const [sku, row] of winners) {
    const had = rows.get(sku);
    if (!had) counts.inserted++;
    else if (had.name === row.name && had.price === row.price) counts.unchanged++;
    else counts.updated++;
    rows.set(sku, row);
  }
  return { csv: `${lines.join('\n')}\n`, counts };
}

beforeAll(async () => {
  dir = tempDir();
  await productsTable(db.pool, TENANTS);
  productsMapping(dir);
  // Round by round, so that each tenant's files are queued in order among the others'.
  for (const tenant of TENANTS) finalRows.set(tenant, new Map());
  for (let index = 0; index < LOADS_PER_TENANT; index++) {
    for (const tenant of TENANTS) {
      const { csv, counts } = generateFile(tenant, index, finalRows.get(tenant)!);
      files.push({ tenant, index, file: writeFile(dir, `${tenant}-${index}.csv`, csv), expected: counts });
    }
  }
  // Every write into the target, with the load its promotion names itself after
  // (application_name) and its transaction: when each load promoted, and in how many
  // transactions that committed. A write of a transaction that rolls back leaves no line.
  await db.pool.query(`
    create table app.fleet_writes (app text, xid bigint, at timestamptz);
    create function app.fleet_write() returns trigger language plpgsql security definer
    set search_path = pg_catalog as $$
    begin
      insert into app.fleet_writes values (current_setting('application_name'), txid_current(), clock_timestamp());
      return null;
    end $$;
    create trigger products_fleet_insert after insert on app.products
      for each statement execute function app.fleet_write();
    create trigger products_fleet_update after update on app.products
      for each statement execute function app.fleet_write();
    create function app.fleet_slow() returns trigger language plpgsql as $$
    begin perform pg_sleep(${SLOW_MS / 1000}); return null; end $$;
    create trigger products_fleet_slow after insert on app.products
      for each row when (new.sku = 'SLOW') execute function app.fleet_slow();`);
});

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
});

/** A worker in a process of its own, resolved once it has said its id. */
async function workerProcess(concurrency: number): Promise<WorkerChild> {
  const worker = await startWorkerChild({ url: db.url, concurrency });
  children.push(worker.child);
  return worker;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ENDED = ['succeeded', 'failed', 'cancelled', 'rolled_back'];

describe('a fleet of workers sharing one queue', () => {
  it('30 loads of 10 tenants on 3 workers, one killed mid-load: each load once, in order, the killed one resumed', async () => {
    const workers = await Promise.all([workerProcess(2), workerProcess(2), workerProcess(2)]);
    for (const f of files) {
      const queued = await load(db.pool, {
        file: f.file,
        tenant: f.tenant,
        mapping: 'products',
        mappingsDir: dir,
        queue: true,
        batchSize: 500,
      });
      expect(queued.status).toBe('queued');
      f.loadId = queued.loadId!;
    }
    const victim = files.find((f) => f.tenant === VICTIM.tenant && f.index === VICTIM.index)!;

    // The victim's promotion sleeping on its marker row: which worker holds it, from the catalog.
    const holder = await until(
      `load ${victim.loadId} to promote`,
      async () => {
        const { rows } = await db.pool.query<{ locked_by: string }>(
          `select j.locked_by
           from graphile_worker.jobs j
           join pg_stat_activity a on a.application_name = 'pgferry load ' || $1 and a.wait_event = 'PgSleep'
           where j.key = 'pgferry_load:' || $1 and j.locked_by is not null`,
          [victim.loadId],
        );
        return rows[0]?.locked_by;
      },
      60_000,
    );
    const killed = workers.find((w) => w.id === holder)!;
    expect(killed).toBeDefined();
    // Whatever else that worker runs now is taken over too.
    const { rows: held } = await db.pool.query<{ load_id: number }>(
      `select substring(key from '^pgferry_load:([0-9]+)$')::int as load_id from graphile_worker.jobs
       where locked_by = $1 and task_identifier = 'pgferry_load'`,
      [killed.id],
    );
    killed.child.kill('SIGKILL');
    await killed.exited;
    const survivors = workers.filter((w) => w !== killed);

    const ids = files.map((f) => f.loadId!);
    await until(
      'every load to end',
      async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          `select count(*)::int as n from ferry.loads where id = any($1) and status = any($2)`,
          [ids, ENDED],
        );
        return rows[0].n === ids.length;
      },
      150_000,
    );
    // Their jobs are done: graphile-worker deletes a job that completed (a failed one stays).
    await until(
      'the jobs to complete',
      async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          `select count(*)::int as n from graphile_worker.jobs where task_identifier = 'pgferry_load'`,
        );
        return rows[0].n === 0;
      },
      30_000,
    );
    for (const w of survivors) w.child.kill('SIGTERM');
    await Promise.all(survivors.map((w) => w.exited));
    const logs = workers.map((w) => w.output()).join('\n');
    const linesOf = (re: RegExp) => logs.split('\n').filter((l) => re.test(l));

    // Every load succeeded, once: one audit line of its end, one end in the workers' logs.
    const { rows: loads } = await db.pool.query<{ id: string; status: string }>(
      'select id, status from ferry.loads where id = any($1) order by id',
      [ids],
    );
    expect(loads.map((l) => l.status)).toEqual(ids.map(() => 'succeeded'));
    const { rows: audit } = await db.pool.query<{ load_id: string; outcome: string; n: number }>(
      `select load_id, outcome, count(*)::int as n from ferry.audit
       where command = 'load' and load_id = any($1) group by 1, 2 order by 1, 2`,
      [ids],
    );
    expect(audit).toEqual(
      ids.flatMap((id) => [
        { load_id: String(id), outcome: 'registered', n: 1 },
        { load_id: String(id), outcome: 'succeeded', n: 1 },
      ]),
    );
    const heldIds = held.map((h) => h.load_id);
    expect(heldIds).toContain(victim.loadId);
    for (const id of ids.filter((id) => !heldIds.includes(id))) {
      expect(linesOf(new RegExp(`^load ${id} succeeded$`)), `load ${id}`).toHaveLength(1);
      expect(linesOf(new RegExp(`^load ${id}: started`)), `load ${id}`).toHaveLength(1);
    }

    // The killed worker's loads: taken over by another worker, which resumed them. (Another
    // load it held may have committed just before the kill: the taker then finds it finished.)
    for (const id of heldIds.filter((id) => id !== victim.loadId)) {
      expect(linesOf(new RegExp(`^load ${id}: started`)).length, `load ${id}`).toBeLessThanOrEqual(2);
    }
    {
      const id = victim.loadId!;
      expect(linesOf(new RegExp(`^load ${id}: started`)), `load ${id}`).toHaveLength(2);
      expect(linesOf(new RegExp(`^load ${id} succeeded$`)), `load ${id}`).toHaveLength(1);
      expect(killed.output()).toMatch(new RegExp(`^load ${id}: started \\(attempt 1\\)$`, 'm'));
      expect(killed.output()).not.toMatch(new RegExp(`^load ${id} succeeded$`, 'm'));
      const { rows } = await db.pool.query<{ worker: string }>(
        'select worker from ferry.load_progress where load_id = $1',
        [id],
      );
      const resumedBy = survivors.find((w) => w.id === rows[0].worker);
      expect(resumedBy, `load ${id} resumed by ${rows[0].worker}`).toBeDefined();
      expect(resumedBy!.output()).toMatch(new RegExp(`^load ${id}: started \\(attempt 2\\)$`, 'm'));
    }
    expect(logs).toMatch(new RegExp(`worker ${killed.id} is gone`));

    // Each load's counts are those of its file applied after the tenant's earlier files, and
    // reconcile: a load run twice, or out of order, would count other inserts and updates.
    for (const f of files) {
      const counts = await loadCounts(db.pool, f.loadId!);
      expect(counts, `load ${f.loadId} (${f.tenant} #${f.index})`).toEqual(f.expected);
      expect(counts.read).toBe(counts.staged + counts.unparseable);
      expect(counts.staged).toBe(
        counts.inserted + counts.updated + counts.unchanged + counts.duplicates + counts.rejected,
      );
    }

    // Each load's writes committed in one transaction, and a tenant's promotions one after
    // another, in the order its loads were queued.
    // (In microseconds: a Date would round them to milliseconds.)
    const { rows: writes } = await db.pool.query<{ load_id: number; xids: number; first: number; last: number }>(
      `select substring(app from '^pgferry load ([0-9]+)$')::int as load_id, count(distinct xid)::int as xids,
              (extract(epoch from min(at)) * 1e6)::float8 as first, (extract(epoch from max(at)) * 1e6)::float8 as last
       from app.fleet_writes group by 1 order by 1`,
    );
    expect(writes.map((w) => [w.load_id, w.xids])).toEqual(ids.map((id) => [id, 1]));
    for (const tenant of TENANTS) {
      const ofTenant = files.filter((f) => f.tenant === tenant).map((f) => writes.find((w) => w.load_id === f.loadId)!);
      for (let i = 1; i < ofTenant.length; i++) {
        expect(ofTenant[i].first, `${tenant}: load ${ofTenant[i].load_id} after the one before`).toBeGreaterThan(
          ofTenant[i - 1].last,
        );
      }
    }

    // The target holds, per tenant, the last queued value of each key, and nothing else.
    for (const tenant of TENANTS) {
      const { rows } = await db.pool.query<{ sku: string; name: string; price: string }>(
        'select sku, name, price::text as price from app.products where tenant_id = $1',
        [tenant],
      );
      const actual = new Map(rows.map((r) => [r.sku, { name: r.name, price: r.price }]));
      expect(actual.size, tenant).toBe(finalRows.get(tenant)!.size);
      expect(actual, tenant).toEqual(finalRows.get(tenant));
    }
  }, 240_000);
});
