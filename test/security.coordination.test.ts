// Coordination that tenant code cannot reach (issue 23): a tenant's mapping runs as its tenant
// inside SECURITY DEFINER functions, where PUBLIC's functions are still callable — pg_notify,
// the advisory lock functions, large objects, pg_sleep, set_config, pg_cancel_backend. Each
// attack runs while another tenant's load runs, and that load must succeed untouched: the
// same rows as a clean run, no wait for the attacker, nothing left behind.
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';

import { ENDED_STATUSES } from '../src/load/ended-statuses.js';
import { load } from '../src/load/load.js';
import type { LoadEvent, LoadResult } from '../src/load/types.js';
import { addTenant } from '../src/tenants.js';
import { productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;

const HEADER = '-- target: app.products\n-- key: sku\n';
const VICTIM_CSV = 'sku,name,price\n' + Array.from({ length: 3 }, (_, i) => `V${i},item ${i},${i}.50\n`).join('');
/** The victim's own mapping takes VICTIM_SLEEP seconds in its transform: the window of the attacks. */
const VICTIM_SLEEP = 2;
const VICTIM_MAPPING = `${HEADER}select s.sku as sku, s.name as name, s.price as price
from staged s cross join (select pg_sleep(${VICTIM_SLEEP})) as z
`;
/** How long the attacker holds whatever it took: a victim that waited for it would be this late. */
const ATTACKER_HOLD = 5;

/**
 * Everything at once, left to right, then a long sleep holding what it took: forged cancel and
 * progress notifications for every load id; session and transaction advisory locks on the keys
 * pgferry used before issue 23 (the target's, the compile's, the mapping's, the migrate lock,
 * the claims of the next load ids) and on every advisory key it can see held in pg_locks; a
 * large object; a session-wide statement_timeout of 1 ms.
 */
const ATTACK = `${HEADER}select s.sku as sku, s.name as name, s.price as price
from staged s cross join (select
  (select count(pg_notify('pgferry_cancel', g::text)) from generate_series(1, 300) g) as cancels,
  (select count(pg_notify('pgferry_load', g::text)) from generate_series(1, 300) g) as progress,
  (select count(pg_try_advisory_lock(1885956911, g)) from generate_series(1, 300) g) as claims,
  (select count(pg_try_advisory_xact_lock(1885956983, g)) from generate_series(1, 300) g) as workers,
  pg_try_advisory_xact_lock(hashtextextended('pgferry:victim:app.products', 0)) as target,
  pg_try_advisory_lock(hashtextextended('pgferry:migrate', 0)) as migrate,
  pg_try_advisory_xact_lock(hashtextextended('pgferry:mapping:victim', 0)) as mapping,
  (select count(pg_try_advisory_lock(((l.classid::bigint << 32) | l.objid::bigint)))
     from pg_locks l where l.locktype = 'advisory' and l.objsubid = 1) as seen,
  (select count(pg_try_advisory_lock(l.classid::bigint::integer, l.objid::bigint::integer))
     from pg_locks l where l.locktype = 'advisory' and l.objsubid = 2) as seen2,
  lo_from_bytea(0, 'left behind') as lo,
  set_config('statement_timeout', '1', false) as timeout,
  pg_sleep(${ATTACKER_HOLD}) as hold) as attack
`;

const rowsOf = async (tenant: string) =>
  (
    await db.pool.query(`select sku, name, price::text as price from app.products where tenant_id = $1 order by sku`, [
      tenant,
    ])
  ).rows;

/** Loads the victim's file; its result, the events it emitted and how long it took. */
async function victimLoad(onRegistered?: (loadId: number) => void) {
  const events: LoadEvent[] = [];
  const started = Date.now();
  const result: LoadResult = await load(db.pool, {
    file: writeFile(dir, 'victim.csv', VICTIM_CSV),
    tenant: 'victim',
    mapping: writeFile(dir, 'victim.sql', VICTIM_MAPPING),
    force: true,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'registered') onRegistered?.(e.loadId);
    },
  });
  return { result, events, ms: Date.now() - started };
}

/**
 * Resolves once the load is in its transform (the victim's mapping sleeps there); within a
 * minute, as a busy machine may take its time to stage.
 */
async function transforming(loadId: () => number | undefined): Promise<void> {
  let last: { status: string; error: string | null } | undefined;
  for (const end = Date.now() + 60_000; Date.now() < end;) {
    const id = loadId();
    if (id !== undefined) {
      const { rows } = await db.pool.query(`select status, error from ferry.loads where id = $1`, [id]);
      last = rows[0];
      if (last?.status === 'transforming') return;
      if (last && ENDED_STATUSES.has(last.status)) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the victim never reached its transform: ${JSON.stringify(last)}`);
}

async function attackerLoad(tenant: string, text: string, options: { mappingTimeoutMs?: number } = {}) {
  return load(db.pool, {
    file: writeFile(dir, `${tenant}.csv`, 'sku,name,price\nA1,attacker,1\n'),
    tenant,
    mapping: writeFile(dir, `${tenant}.sql`, text),
    force: true,
    ...options,
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['victim']);
});

describe("a tenant's mapping cannot disturb another tenant's load", () => {
  let clean: Awaited<ReturnType<typeof victimLoad>>;
  let cleanRows: unknown[];

  beforeAll(async () => {
    clean = await victimLoad();
    cleanRows = await rowsOf('victim');
  });

  it('forged cancels and progress, advisory locks old and seen, a large object, a session setting: the victim goes on', async () => {
    const role = (await addTenant(db.pool, 'mallory')).roleName;
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const forged: string[] = [];
    listener.on('notification', (n) => forged.push(n.payload ?? ''));
    await listener.query('listen pgferry_cancel');
    try {
      let victimId: number | undefined;
      const victim = victimLoad((id) => (victimId = id));
      await transforming(() => victimId);
      const attack = attackerLoad('mallory', ATTACK);
      const [v, a] = await Promise.all([victim, attack]);

      // The attack ran while the victim loaded, and sent a cancel for the victim's id.
      expect(a.status).toBe('succeeded');
      expect(forged).toContain(String(victimId));
      // The victim: as a clean run, without waiting for the attacker's locks.
      expect(v.result.status).toBe('succeeded');
      // Its rows were there from the clean run: each unchanged, none rejected.
      expect(v.result.counts).toMatchObject({ read: 3, staged: 3, inserted: 0, updated: 0, unchanged: 3 });
      expect(await rowsOf('victim')).toEqual(cleanRows);
      expect(v.events.filter((e) => e.type === 'waiting')).toEqual([]);
      expect(v.ms).toBeLessThan(clean.ms + (ATTACKER_HOLD * 1000) / 2);
      // Nothing outlives the attacker's step: no large object, no advisory lock, no setting.
      const { rows: los } = await db.pool.query(
        `select count(*)::int as n from pg_largeobject_metadata where lomowner = $1::regrole`,
        [role],
      );
      expect(los[0].n).toBe(0);
      const { rows: locks } = await db.pool.query(
        `select count(*)::int as n from pg_locks
         where locktype = 'advisory' and classid in (1885956911, 1885956983)`,
      );
      expect(locks[0].n).toBe(0);
      // The next load of the victim takes its claim, compiles and promotes as usual.
      expect((await victimLoad()).result.status).toBe('succeeded');
    } finally {
      await listener.end();
    }
  }, 180_000);

  it("pg_cancel_backend and pg_terminate_backend of the victim's sessions are refused", async () => {
    await addTenant(db.pool, 'trudy');
    let victimId: number | undefined;
    const victim = victimLoad((id) => (victimId = id));
    await transforming(() => victimId);
    const attack = attackerLoad(
      'trudy',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price from staged s
       where (select count(*) from pg_stat_activity a
              where a.pid <> pg_backend_pid() and a.datname = current_database()
                and (pg_cancel_backend(a.pid) or pg_terminate_backend(a.pid))) >= 0
      `,
    );
    const [v, a] = await Promise.all([victim, attack]);
    expect(a.status).toBe('failed');
    // Refused, in the words of the server's version and of whichever session it met first (on
    // PostgreSQL 15, a superuser's one, such as an autovacuum worker's, says so).
    expect(a.error).toMatch(/permission denied|must be a member of the role|must be a superuser to (cancel|terminate)/);
    expect(v.result.status).toBe('succeeded');
    expect(await rowsOf('victim')).toEqual(cleanRows);
  }, 180_000);
});

describe('a statement timeout bounds a mapping', () => {
  it('stops a mapping that sleeps, even one that lifts statement_timeout itself, and names it', async () => {
    await addTenant(db.pool, 'sloth');
    const started = Date.now();
    const result = await attackerLoad(
      'sloth',
      `${HEADER}select s.sku as sku, s.name as name, s.price as price
       from staged s cross join (select set_config('statement_timeout', '0', false), pg_sleep(30)) as z
      `,
      { mappingTimeoutMs: 1000 },
    );
    expect(result.status).toBe('failed');
    expect(result.error).toContain('mapping sloth ran longer than its timeout of 1 s');
    expect(Date.now() - started).toBeLessThan(15000);
    const { rows } = await db.pool.query(`select count(*)::int as n from app.products where tenant_id = 'sloth'`);
    expect(rows[0].n).toBe(0);
    // Kept with the load, for a resume or a worker that runs it.
    const { rows: kept } = await db.pool.query(
      `select options->>'mappingTimeoutMs' as ms from ferry.loads where id = $1`,
      [result.loadId],
    );
    expect(kept[0].ms).toBe('1000');
  });
});
