import type pg from 'pg';

import { withTransaction } from '../../db/database.js';
import { isDatabaseError, isTransient, PgferryError, SQLSTATE } from '../../errors.js';
import { locateInMapping, type Mapping } from '../../mappings/mapping-file.js';
import { describeForCatalog } from '../describe-for-catalog.js';
import { cleanup } from './cleanup.js';

/**
 * compile: ferry.prepare_staging (the staging table, one text column per source column) and
 * ferry.compile_load (the mapping's functions for this load) in one transaction, before any
 * data moves, fenced by the claim's epoch like every step that writes. A mapping error fails
 * the load and is thrown with the mapping's file and line; a passing failure (a lost
 * connection) is thrown as it is, for the caller to try again. Returns the quoted, qualified
 * staging table.
 */
export async function compile(
  pool: pg.Pool,
  loadId: number,
  mapping: Mapping,
  columns: string[],
  claimEpoch: number,
): Promise<string> {
  try {
    return await withTransaction(
      pool,
      async (client) => {
        await client.query('select ferry.check_claim($1, $2)', [loadId, claimEpoch]);
        const { rows } = await client.query<{ table: string }>('select ferry.prepare_staging($1, $2) as table', [
          loadId,
          columns,
        ]);
        await client.query('select ferry.compile_load($1)', [loadId]);
        return rows[0].table;
      },
      { tenantCode: true },
    );
  } catch (error) {
    if (isTransient(error) || (isDatabaseError(error) && error.code === SQLSTATE.claimTakenOver)) throw error;
    const userError = mappingCompileError(error, mapping, columns);
    await pool.query(`select ferry.set_status($1, 'failed', $2)`, [loadId, describeForCatalog(userError)]);
    await cleanup(pool, loadId).catch(() => {});
    throw userError;
  }
}

/** The staging table of a load compiled already (one resumed). */
export async function stagingTableOf(pool: pg.Pool, loadId: number): Promise<string> {
  const { rows } = await pool.query<{ table: string }>(
    `select ferry.quoted_object(t.schema_name, 'stage', $1) as table from ferry.tenants t where t.id = (ferry.load_tenant($1)).id`,
    [loadId],
  );
  return rows[0].table;
}

function mappingCompileError(error: unknown, mapping: Mapping, columns: string[]): unknown {
  if (!isDatabaseError(error)) return error;
  const at = locateInMapping(mapping, error.internalQuery, error.internalPosition);
  let hint = error.hint;
  if (error.code === '42703') {
    hint = `the staged columns are: ${columns.map((c) => JSON.stringify(c)).join(', ')}`;
  }
  if (error.code === '42501') {
    hint = 'a mapping runs as the tenant: it may read only tables protected with `pgferry tenant protect`';
  }
  return new PgferryError(`mapping ${mapping.name}: ${error.message}`, {
    location: at ?? { file: mapping.path, line: mapping.selectLine },
    hint,
    cause: error,
  });
}
