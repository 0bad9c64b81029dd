// A load's claim (ferry.take_load_claim) on a connection the caller lends: a sync's, which holds
// the sync's lock. The claim, the cancel LISTEN and a lost connection behave as on a
// connection of the claim's own; release gives the lent connection back unlocked and open.
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';

import { LoadClaim } from '../src/load/claim.js';
import { load } from '../src/load/load.js';
import { productsMapping, productsTable, registerLoadLike, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

let db: TestDatabase;
let finished: number;

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = tempDir();
  await productsTable(db.pool, ['acme']);
  const file = writeFile(dir, 'catalog.csv', 'sku,name,price\nA,a,1\n');
  const result = await load(db.pool, { file, tenant: 'acme', mapping: productsMapping(dir) });
  expect(result.status).toBe('succeeded');
  finished = result.loadId!;
});

const registerLoad = () => registerLoadLike(db.pool, finished);

async function session(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function claimed(loadId: number): Promise<boolean> {
  const { rows } = await db.pool.query('select ferry.load_is_claimed($1) as claimed', [loadId]);
  return rows[0].claimed;
}

describe('a cancel and a claim at the same moment', () => {
  it('a cancel under way holds the claim until it commits: the load cannot be taken in between', async () => {
    const loadId = await registerLoad();
    const cancelling = await session();
    try {
      await cancelling.query('begin');
      const { rows } = await cancelling.query('select ferry.request_cancel($1, $2) as done', [loadId, 'test']);
      expect(rows[0].done).toBe('cancelled');
      expect(await LoadClaim.take(db.pool, loadId)).toBeUndefined();
      await cancelling.query('commit');
      const claim = (await LoadClaim.take(db.pool, loadId))!;
      expect(claim).toBeDefined();
      const { rows: status } = await db.pool.query('select status from ferry.loads where id = $1', [loadId]);
      expect(status[0].status).toBe('cancelled');
      await claim.release();
    } finally {
      await cancelling.end();
    }
  });

  it('a load claimed first gets a cancel request, not a cancelled status under its runner', async () => {
    const loadId = await registerLoad();
    const claim = (await LoadClaim.take(db.pool, loadId))!;
    try {
      const { rows } = await db.pool.query('select ferry.request_cancel($1, $2) as done', [loadId, 'test']);
      expect(rows[0].done).toBe('requested');
      const { rows: status } = await db.pool.query('select status from ferry.loads where id = $1', [loadId]);
      expect(status[0].status).not.toBe('cancelled');
    } finally {
      await claim.release();
    }
  });
});

describe('a claim on a lent connection', () => {
  it('claims on it, hears a cancel on it, and gives it back open, unlocked and not listening', async () => {
    const loadId = await registerLoad();
    const lent = await session();
    try {
      const { rows: pid } = await lent.query('select pg_backend_pid() as pid');
      const claim = (await LoadClaim.take(db.pool, loadId, lent))!;
      expect(claim).toBeDefined();
      expect(await claimed(loadId)).toBe(true);
      const { rows: holder } = await db.pool.query(
        `select pid from pg_locks, ferry.load_claim_key($1) as k(key)
         where locktype = 'advisory' and objsubid = 1
           and classid = ((k.key >> 32) & 4294967295)::oid and objid = (k.key & 4294967295)::oid`,
        [loadId],
      );
      expect(holder.map((r) => r.pid)).toEqual([pid[0].pid]);
      // A second claim, on another connection, is refused while the lent one holds it.
      expect(await LoadClaim.take(db.pool, loadId)).toBeUndefined();

      await db.pool.query('select ferry.request_cancel($1, $2)', [loadId, 'test']);
      await until(async () => claim.cancelRequested, 5_000);

      await claim.release();
      expect(await claimed(loadId)).toBe(false);
      const { rows: after } = await lent.query('select array(select pg_listening_channels()) as channels');
      expect(after[0].channels).toEqual([]);
    } finally {
      await lent.end();
    }
  });

  it('a lent connection lost: ensure() claims the load again on a connection of its own', async () => {
    const loadId = await registerLoad();
    const lent = await session();
    const claim = (await LoadClaim.take(db.pool, loadId, lent))!;
    const { rows: pid } = await lent.query('select pg_backend_pid() as pid');
    const ended = new Promise((resolve) => lent.once('end', resolve));
    await db.pool.query('select pg_terminate_backend($1)', [pid[0].pid]);
    await ended;
    // The claim takes itself again on a connection of its own as soon as it sees the loss (or
    // ensure() does): it may never be seen unclaimed in between.
    await claim.ensure();
    expect(await claimed(loadId)).toBe(true);
    const { rows: holders } = await db.pool.query(
      `select pid from pg_locks where locktype = 'advisory' and granted and pid <> $1
         and ((classid::bigint << 32) | objid::bigint) = ferry.load_claim_key($2)`,
      [pid[0].pid, loadId],
    );
    expect(holders).toHaveLength(1);
    await claim.release();
    // Its own connection closed: the server lets go of the lock as the backend exits.
    await until(async () => !(await claimed(loadId)), 5_000);
    await lent.end().catch(() => {});
  });
});
