import os from 'node:os';

import type pg from 'pg';

import { withTransaction } from '../db/database.js';
import { asUserError, PgferryError } from '../errors.js';

export interface PurgeItem {
  /** `rows`, `policies`, `schema`, `role` or `catalog`. */
  kind: string;
  object: string;
  detail: string;
}

export interface PurgeResult {
  tenant: string;
  /** Rows deleted, per protected table (children first). */
  tables: { table: string; rows: number }[];
  schema: string;
  role: string;
  /** Catalog rows deleted: loads, syncs, restores, audit lines. */
  catalog: Record<string, number>;
}

/**
 * What purgeTenant would delete, a line each: the tenant's rows per protected table (counted
 * as the tenant), its policies, schema, role and catalog rows. Changes nothing.
 *
 * @example
 *   for (const item of await planPurge(pool, 'acme')) console.log(item.kind, item.object, item.detail);
 */
export async function planPurge(pool: pg.Pool, tenant: string): Promise<PurgeItem[]> {
  // Counting as the tenant makes (and drops) a function: rolled back, nothing of it is left.
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<PurgeItem>('select * from ferry.purge_plan($1)', [tenant]);
    await client.query('rollback');
    client.release();
    return rows;
  } catch (error) {
    client.release(true);
    throw asUserError(error);
  }
}

/**
 * purgeTenant: deletes a tenant whole, in one transaction: its rows in every protected table
 * (as the tenant, children first), its policies, staging schema and role, and its catalog
 * rows, leaving one audit line that it was purged (when, by whom, rows per table). Other
 * tenants are not touched. Refused while a load of the tenant runs. With `onlyWithoutRows`
 * (`pgferry tenant remove`), a tenant that has rows is refused, and nothing changes.
 *
 * @example
 *   const { tables } = await purgeTenant(pool, 'acme');
 */
export async function purgeTenant(
  pool: pg.Pool,
  tenant: string,
  options: { onlyWithoutRows?: boolean } = {},
): Promise<PurgeResult> {
  try {
    const result = await withTransaction(pool, async (client) => {
      const { rows } = await client.query<{ result: Omit<PurgeResult, 'tenant'> }>(
        'select ferry.purge_tenant($1, $2) as result',
        [tenant, os.userInfo().username],
      );
      const held = rows[0].result.tables.filter((t) => Number(t.rows) > 0);
      if (options.onlyWithoutRows && held.length > 0) {
        // Thrown inside the transaction: the purge it began is rolled back whole.
        throw new PgferryError(
          `tenant ${tenant} has rows (${held.map((t) => `${t.table}: ${t.rows}`).join(', ')}): nothing was removed`,
          { hint: `pgferry tenant purge ${tenant} lists what deleting them too would delete` },
        );
      }
      return rows[0].result;
    });
    return {
      tenant,
      tables: result.tables.map((t) => ({ table: t.table, rows: Number(t.rows) })),
      schema: result.schema,
      role: result.role,
      catalog: Object.fromEntries(Object.entries(result.catalog).map(([k, v]) => [k, Number(v)])),
    };
  } catch (error) {
    throw asUserError(error);
  }
}
