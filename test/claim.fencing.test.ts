// A load's claim cannot be lost silently (issue 23): when only its claim connection is cut,
// the load's process takes the claim again or, if another process took the load over, stops
// without writing (the claim epoch fences every step); a keepalive carries the claim through
// idle_session_timeout; and tenant code cannot take a load's claim.
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';

import { load } from '../src/load/load.js';
import { resume } from '../src/load/resume.js';
import type { LoadEvent, LoadResult } from '../src/load/types.js';
import { rollback } from '../src/rollback.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

const ROWS = 50;
let db: TestDatabase;
let dir: string;
let file: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['acme', 'beta', 'gamma', 'delta']);
  const lines = Array.from({ length: ROWS }, (_, i) => `S${i},item ${i},${i}.50`);
  file = writeFile(dir, 'catalog.csv', `sku,name,price\n${lines.join('\n')}\n`);
});

/** A mapping whose transform takes `seconds` (an InitPlan: it sleeps once, not per row). */
function slowMapping(name: string, seconds: number): string {
  return writeFile(
    dir,
    `${name}.sql`,
    `-- target: app.products
-- key: sku
select s.sku as sku, s.name as name, s.price as price
from staged s
where (select count(*) from pg_sleep(${seconds})) = 1
`,
  );
}

/** A pool of its own: the load's process and resume's do not share connections. */
function newPool(url = db.url): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** The backend that holds the load's claim, if any. */
async function claimHolder(pool: pg.Pool, loadId: number): Promise<number | undefined> {
  const { rows } = await pool.query<{ pid: number }>(
    `select l.pid from pg_locks l, ferry.load_claim_key($1) as k(key)
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and l.database = (select oid from pg_database where datname = current_database())
       and l.classid = ((k.key >> 32) & 4294967295)::oid and l.objid = (k.key & 4294967295)::oid`,
    [loadId],
  );
  return rows[0]?.pid;
}

/** Starts a load and resolves its id once its transform has begun. */
function startLoad(pool: pg.Pool, tenant: string, mapping: string) {
  let loadId = 0;
  let transforming = false;
  const onEvent = (event: LoadEvent) => {
    if (event.type === 'registered') loadId = event.loadId;
    if (event.type === 'step' && event.step === 'transform') transforming = true;
  };
  const running = load(pool, { file, tenant, mapping, onEvent });
  running.catch(() => {});
  return {
    running,
    transforming: async () => {
      await until(() => transforming, 20_000);
      return loadId;
    },
  };
}

/** The catalog, the target table and the undo log tell the same story; status and rollback work. */
async function expectOneConsistentLoad(loadId: number, tenant: string): Promise<void> {
  const { rows } = await db.pool.query('select status, inserted, updated, claim_epoch from ferry.loads where id = $1', [
    loadId,
  ]);
  expect(rows[0].status).toBe('succeeded');
  expect(Number(rows[0].inserted)).toBe(ROWS);
  const { rows: target } = await db.pool.query('select count(*)::int as n from app.products where tenant_id = $1', [
    tenant,
  ]);
  expect(target[0].n).toBe(ROWS);
  const { rows: audit } = await db.pool.query(
    `select count(*)::int as n from ferry.audit where load_id = $1 and command = 'load' and outcome = 'succeeded'`,
    [loadId],
  );
  expect(audit[0].n).toBe(1);
  const status = await runCli(['status', String(loadId), '--json'], { env: { DATABASE_URL: db.url } });
  expect(status.code).toBe(0);
  expect(JSON.parse(status.stdout).status).toBe('succeeded');
  const undone = await rollback(db.pool, loadId);
  expect(undone.outcome).toBe('rolled_back');
  const { rows: after } = await db.pool.query('select count(*)::int as n from app.products where tenant_id = $1', [
    tenant,
  ]);
  expect(after[0].n).toBe(0);
}

describe('the claim connection cut while the load transforms', () => {
  it('with a resume at once: exactly one of them promotes, and the catalog agrees with the table', async () => {
    const original = newPool();
    const other = newPool();
    try {
      const started = startLoad(original, 'acme', slowMapping('slow_a', 2));
      const loadId = await started.transforming();
      const pid = (await claimHolder(db.pool, loadId))!;
      await db.pool.query('select pg_terminate_backend($1, 5000)', [pid]);
      const resumed = resume(other, loadId).then(
        (r) => r,
        (error: Error) => error,
      );
      const [first, second] = await Promise.all([started.running, resumed]);
      const promotedByOriginal = first.status === 'succeeded';
      const promotedByResume = !(second instanceof Error) && second.outcome === 'resumed';
      expect([promotedByOriginal, promotedByResume].filter(Boolean)).toHaveLength(1);
      if (promotedByResume) expect(first.error).toMatch(/taken over by another process/);
      else
        expect(String(second instanceof Error ? second.message : second.outcome)).toMatch(/running process|finished/);
      await expectOneConsistentLoad(loadId, 'acme');
    } finally {
      await original.end();
      await other.end();
    }
  }, 60_000);

  it('taken over meanwhile: the original stops without writing, and the resume that took it promotes', async () => {
    const original = newPool();
    const other = newPool();
    try {
      const started = startLoad(original, 'beta', slowMapping('slow_b', 2));
      const loadId = await started.transforming();
      const pid = (await claimHolder(db.pool, loadId))!;
      // Cut, and taken before the original can take its claim again: new connections are
      // refused meanwhile (the original's retake waits), and the takeover's raise of the epoch
      // waits for the transform in flight (it holds the load's row).
      const thief = new pg.Client({ connectionString: db.url });
      thief.on('error', () => {});
      await thief.connect();
      try {
        await thief.query(`alter database ${db.name} connection limit 0`);
        const { rows } = await thief.query('select pg_terminate_backend($1, 5000) and ferry.claim_load($2) as taken', [
          pid,
          loadId,
        ]);
        await thief.query(`alter database ${db.name} connection limit -1`);
        expect(rows[0].taken).toBe(true);
        const { rows: taken } = await thief.query(`select ferry.take_load_claim($1, 'test thief') as epoch`, [loadId]);
        expect(Number(taken[0].epoch)).toBe(2);
      } finally {
        await thief.query(`alter database ${db.name} connection limit -1`).catch(() => {});
        await thief.end();
      }
      // The original finds out (its claim's retake fails) and stops; resume finishes the load.
      const [first, second] = await Promise.all([started.running, resume(other, loadId)]);
      expect(first.status).toBe('failed');
      expect(first.error).toMatch(/^load \d+ was taken over by another process/);
      expect(second.outcome).toBe('resumed');
      expect((second as { result: LoadResult }).result.status).toBe('succeeded');
      await expectOneConsistentLoad(loadId, 'beta');
    } finally {
      await original.end();
      await other.end();
    }
  }, 60_000);

  it('a promotion fenced by an epoch that moved on refuses to commit, with a clear error', async () => {
    const { rows } = await db.pool.query<{ id: number }>('select id from ferry.loads order by id limit 1');
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const epoch = (await client.query('select claim_epoch from ferry.loads where id = $1', [rows[0].id])).rows[0]
        .claim_epoch;
      await expect(client.query('select ferry.check_claim($1, $2)', [rows[0].id, epoch - 1])).rejects.toMatchObject({
        code: 'PF003',
        message: expect.stringMatching(/was taken over by another process \(.*\); this process stops without writing/),
      });
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('idle_session_timeout on the server', () => {
  it('a load that takes several seconds keeps its claim connection and succeeds once', async () => {
    const idle = await createTestDatabase();
    await productsTable(idle.pool, ['acme']);
    await idle.pool.query(`alter database ${idle.name} set idle_session_timeout = '1s'`);
    const pool = newPool(idle.url);
    try {
      const mapping = slowMapping('slow_idle', 3);
      let loadId = 0;
      let transforming = false;
      const running = load(pool, {
        file,
        tenant: 'acme',
        mapping,
        onEvent: (event) => {
          if (event.type === 'registered') loadId = event.loadId;
          if (event.type === 'step' && event.step === 'transform') transforming = true;
        },
      });
      await until(() => transforming, 20_000);
      const watcher = newPool(idle.url);
      try {
        const before = await claimHolder(watcher, loadId);
        await new Promise((resolve) => setTimeout(resolve, 2000));
        // The same backend, idle all along but for the keepalive: never cut.
        expect(await claimHolder(watcher, loadId)).toBe(before);
      } finally {
        await watcher.end();
      }
      const result = await running;
      expect(result.status).toBe('succeeded');
      expect(result.counts.inserted).toBe(ROWS);
      // A new connection: the pool's idle ones are cut after a second.
      const look = new pg.Client({ connectionString: idle.url });
      look.on('error', () => {});
      await look.connect();
      const { rows } = await look
        .query('select claim_epoch, status from ferry.loads where id = $1', [loadId])
        .finally(() => look.end());
      expect(rows[0]).toEqual({ claim_epoch: '1', status: 'succeeded' });
    } finally {
      await pool.end();
      await idle.pool.query(`alter database ${idle.name} reset idle_session_timeout`).catch(() => {});
    }
  }, 60_000);
});

describe('a tenant that takes advisory locks', () => {
  it('on every key it can compute: another load still claims, runs and succeeds', async () => {
    // The keys of the old claims (class, id), of bare ids, and of hashes of names.
    const greedy = writeFile(
      dir,
      'greedy.sql',
      `-- target: app.products
-- key: sku
select s.sku as sku, s.name as name, s.price as price
from staged s
where (select count(pg_try_advisory_lock(1885956911, i))
           + count(pg_try_advisory_lock(i::bigint))
           + count(pg_try_advisory_lock(hashtextextended('load:' || i, 0)))
       from generate_series(1, 500) as i) > 0
  and (select count(*) from pg_sleep(2)) = 1
`,
    );
    const first = newPool();
    const second = newPool();
    try {
      const started = startLoad(first, 'gamma', greedy);
      await started.transforming();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const other = await load(second, { file, tenant: 'delta', mapping: productsMapping(dir, {}, 'plain') });
      expect(other.status).toBe('succeeded');
      expect((await started.running).status).toBe('succeeded');
    } finally {
      await first.end();
      await second.end();
    }
  }, 60_000);
});
