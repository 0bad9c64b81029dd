// Passing faults: connections dropped in the middle of a step, the server restarted or crashed
// during a load. The step is tried again and the load ends exactly as an uninterrupted one.
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';

import { ensureDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { load } from '../src/load/load.js';
import type { LoadEvent, LoadResult } from '../src/load/types.js';
import { addTenant } from '../src/tenants.js';
import { productsMapping, productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { startRestartableServer } from './helpers/restartable-server.js';
import { rowsDifferingFrom } from './helpers/tenant-rows.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let mapping: string;
let file: string;
let reference: LoadResult;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  await productsTable(db.pool, ['reference']);
  mapping = productsMapping(dir);
  const lines = ['sku,name,price'];
  for (let i = 0; i < 150_000; i++) lines.push(`SKU-${i},"product ${i}",${i % 500}.25`);
  file = writeFile(dir, 'catalog.csv', `${lines.join('\n')}\n`);
  reference = await load(db.pool, { file, tenant: 'reference', mapping, chunkRows: 10_000 });
});

/** Ends every other session on the test's database, as a network failure would. */
async function dropConnections(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
    );
  } finally {
    await client.end();
  }
}

const sameRows = (pool: pg.Pool, tenant: string) =>
  rowsDifferingFrom(pool, 'app.products', ['sku', 'name', 'price'], tenant, 'reference');

describe('passing faults', () => {
  it.each(['stage', 'transform', 'promote'] as const)(
    'connections dropped during %s: the step is retried, the load ends as an uninterrupted one',
    async (step) => {
      const tenant = `drop_${step}`;
      await addTenant(db.pool, tenant);
      const events: LoadEvent[] = [];
      let dropped = false;
      let progress = 0;
      const result = await load(db.pool, {
        file,
        tenant,
        mapping,
        chunkRows: 10_000,
        batchSize: 10_000,
        onEvent: (e) => {
          events.push(e);
          const now =
            (step === 'stage' && e.type === 'stage-progress' && ++progress === 3) ||
            (step === 'transform' && e.type === 'step' && e.step === 'transform') ||
            (step === 'promote' && e.type === 'promote-progress');
          if (now && !dropped) {
            dropped = true;
            // Mid-step: after the step's first statement is under way.
            setTimeout(() => void dropConnections(db.url), step === 'transform' ? 50 : 0);
          }
        },
      });
      expect(result.error).toBeUndefined();
      expect(result.status).toBe('succeeded');
      expect(events).toContainEqual(expect.objectContaining({ type: 'retry', step, attempt: 1 }));
      // The server kept its tables: nothing is staged again.
      expect(events.map((e) => e.type)).not.toContain('restage');
      expect(result.counts).toEqual(reference.counts);
      expect(await sameRows(db.pool, tenant)).toBe(0);
    },
  );

  it('the connection dropped while the mapping compiles: compiling is retried, not taken for a mapping error', async () => {
    const tenant = 'drop_compile';
    await addTenant(db.pool, tenant);
    // The compile waits on this tenant's compile turn (ferry.install_as_tenant's lock), held
    // here, so that its connection is cut in the middle of it.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query(`select ferry.lock_row('as_tenant', schema_name) from ferry.tenants where slug = $1`, [
        tenant,
      ]);
      const events: LoadEvent[] = [];
      const loading = load(db.pool, { file, tenant, mapping, onEvent: (e) => events.push(e) });
      let waiting: number | undefined;
      for (let i = 0; i < 200 && !waiting; i++) {
        const { rows } = await db.pool.query<{ pid: number }>(
          `select pid from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock' and query like '%compile_load%'`,
        );
        waiting = rows[0]?.pid;
        if (!waiting) await new Promise((r) => setTimeout(r, 50));
      }
      expect(waiting).toBeDefined();
      await db.pool.query('select pg_terminate_backend($1)', [waiting]);
      await blocker.query('rollback');
      const result = await loading;
      expect(result.error).toBeUndefined();
      expect(result.status).toBe('succeeded');
      expect(events).toContainEqual(expect.objectContaining({ type: 'retry', step: 'compile', attempt: 1 }));
      expect(result.counts).toEqual(reference.counts);
      expect(await sameRows(db.pool, tenant)).toBe(0);
    } finally {
      blocker.release();
    }
  });

  it('the embedded server restarted during staging: the load waits for it and finishes', async () => {
    const own = await serverOfItsOwn('restart', { ephemeral: true });
    try {
      const events: LoadEvent[] = [];
      let restarting: Promise<void> | undefined;
      let progress = 0;
      const result = await load(own.pool, {
        file,
        tenant: 'acme',
        mapping,
        chunkRows: 10_000,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'stage-progress' && ++progress === 3 && !restarting) restarting = own.restart('stop');
        },
      });
      await restarting;
      expect(result.error).toBeUndefined();
      expect(result.status).toBe('succeeded');
      expect(events.some((e) => e.type === 'retry')).toBe(true);
      expect(result.counts).toEqual(own.baseline.counts);
      expect(await sameRows(own.pool, 'acme')).toBe(0);
    } finally {
      await own.stop();
    }
  }, 120_000);

  it.each(['stage', 'promote'] as const)(
    'the server crashed during %s (its UNLOGGED tables emptied): the load stages again and finishes',
    async (step) => {
      // Not ephemeral: commits are durable, as on a server of one's own.
      const own = await serverOfItsOwn('crash', { ephemeral: false });
      try {
        const events: LoadEvent[] = [];
        let crashing: Promise<void> | undefined;
        let progress = 0;
        const result = await load(own.pool, {
          file,
          tenant: 'acme',
          mapping,
          chunkRows: 10_000,
          onEvent: (e) => {
            events.push(e);
            const now =
              (step === 'stage' && e.type === 'stage-progress' && ++progress === 3) ||
              (step === 'promote' && e.type === 'step' && e.step === 'promote');
            if (now && !crashing) crashing = own.restart('crash');
          },
        });
        await crashing;
        expect(result.error).toBeUndefined();
        expect(result.status).toBe('succeeded');
        expect(events.some((e) => e.type === 'retry' && e.step === step)).toBe(true);
        // During staging the retry itself starts again from line 1; later, staging runs again.
        expect(events.filter((e) => e.type === 'step' && e.step === 'stage').length).toBe(step === 'stage' ? 1 : 2);
        expect(events.filter((e) => e.type === 'restage')).toHaveLength(1);
        expect(result.counts).toEqual(own.baseline.counts);
        expect(await sameRows(own.pool, 'acme')).toBe(0);
      } finally {
        await own.stop();
      }
    },
    120_000,
  );
});

/**
 * An embedded server of the test's own, to stop or crash: its database `name` migrated, the
 * products table for tenants acme and reference, and reference loaded with `file`.
 */
async function serverOfItsOwn(name: string, options: { ephemeral: boolean }) {
  const server = await startRestartableServer(name, options);
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  await ensureDatabase(server.url, name);
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const stop = async () => {
    await pool.end().catch(() => {});
    await server.stop();
  };
  try {
    const client = await pool.connect();
    await migrate(client);
    client.release();
    await productsTable(pool, ['acme', 'reference']);
    const baseline = await load(pool, { file, tenant: 'reference', mapping });
    expect(baseline.status).toBe('succeeded');
    /** Stops the server cleanly, or as in a crash (an immediate shutdown, then recovery), and starts it again. */
    const restart = (how: 'stop' | 'crash') => server.restart(how === 'stop' ? 'fast' : 'immediate');
    return { pool, baseline, restart, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
