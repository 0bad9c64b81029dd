import type pg from 'pg';

import { migrate } from './db/migrate.js';
import { isDatabaseError, PgferryError } from './errors.js';

/** One thing pgferry made, and the statement that removes it (null: it is kept; `detail` says why). */
export interface UninstallItem {
  kind: 'policy' | 'row security' | 'privilege' | 'jobs' | 'schema' | 'role';
  /** `pgferry_tenant_acme on app.products`, `app.products`, `ferry_t_acme`, `pgf_1a2b3c_acme` … */
  object: string;
  detail: string;
  statement: string | null;
}

export interface UninstallPlan {
  /** Whether pgferry's schema is in this database at all. */
  installed: boolean;
  /** The instance id of ferry.settings: its roles are named pgf_<instance>_… */
  instance?: string;
  /** In the order uninstall() runs them. */
  items: UninstallItem[];
  /** What stands in the way, one line each: uninstall() refuses while there is any. */
  blockers: string[];
}

export interface UninstallResult {
  instance?: string;
  removed: UninstallItem[];
  kept: UninstallItem[];
}

/**
 * What `pgferry uninstall` would remove: pgferry's policies, the row-level security it turned
 * on, the privileges it gave its roles, its schemas and this instance's roles — and what stands
 * in the way (a running load or worker, an application object that depends on pgferry's).
 * The application's tables and rows are not in it. An older install is upgraded first, so
 * that the list is made by this version's SQL.
 *
 * @example
 *   const plan = await planUninstall(pool);
 *   for (const item of plan.items) console.log(item.kind, item.object, item.detail);
 */
export async function planUninstall(pool: pg.Pool): Promise<UninstallPlan> {
  const client = await pool.connect();
  try {
    if (!(await isInstalled(client))) return { installed: false, items: [], blockers: [] };
    await migrate(client);
    return await readPlan(client);
  } finally {
    client.release();
  }
}

/**
 * `pgferry uninstall --yes`: removes everything planUninstall() lists, in one transaction — it
 * all goes, or nothing does. Refuses (a PgferryError naming them) while there are blockers.
 *
 * @example
 *   const { removed } = await uninstall(pool);
 */
export async function uninstall(pool: pg.Pool): Promise<UninstallResult> {
  const client = await pool.connect();
  try {
    if (!(await isInstalled(client))) return { removed: [], kept: [] };
    await migrate(client);
    await client.query('begin');
    try {
      // migrate's lock: no install or upgrade runs meanwhile.
      await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', ['pgferry:migrate']);
      const plan = await readPlan(client);
      if (plan.blockers.length > 0)
        throw new PgferryError(`uninstall refused: ${plan.blockers.join('; ')}`, {
          hint: 'nothing was removed; run `pgferry uninstall` to see the whole list',
        });
      for (const item of plan.items) {
        if (item.statement === null) continue;
        try {
          await client.query(item.statement);
        } catch (error) {
          const reason = isDatabaseError(error) && error.detail ? `${error.message}: ${error.detail}` : String(error);
          throw new PgferryError(`uninstall failed at \`${item.statement}\`: ${reason.replace(/\s*\n\s*/g, '; ')}`, {
            hint: 'nothing was removed',
            cause: error,
          });
        }
      }
      await client.query('commit');
      return {
        instance: plan.instance,
        removed: plan.items.filter((i) => i.statement !== null),
        kept: plan.items.filter((i) => i.statement === null),
      };
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
  } finally {
    client.release();
  }
}

async function isInstalled(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ installed: boolean }>(
    `select to_regclass('ferry.settings') is not null as installed`,
  );
  return rows[0].installed;
}

async function readPlan(client: pg.ClientBase): Promise<UninstallPlan> {
  const { rows: settings } = await client.query<{ instance_id: string }>('select instance_id from ferry.settings');
  const { rows: items } = await client.query<UninstallItem>(
    'select kind, object, detail, statement from ferry.uninstall_plan()',
  );
  const { rows: claimed } = await client.query<{ id: number }>(
    'select id from ferry.loads where ferry.load_is_claimed(id) order by id',
  );
  const { rows: workers } = await client.query<{ n: number }>(
    `select count(*)::int as n from pg_locks
     where locktype = 'advisory' and granted and classid = ferry.worker_lock_class()::oid and objsubid = 2
       and database = (select oid from pg_database where datname = current_database())`,
  );
  const { rows: blockers } = await client.query<{ line: string }>('select ferry.uninstall_blockers() as line');
  return {
    installed: true,
    instance: settings[0].instance_id,
    items,
    blockers: [
      ...claimed.map((l) => `load ${l.id} is running (stop it with pgferry cancel ${l.id}, or let it end)`),
      ...(workers[0].n > 0 ? ['a pgferry worker is running on this database (stop it first)'] : []),
      ...blockers.map((b) => b.line),
    ],
  };
}
