import type pg from 'pg';

import { withTransaction } from '../../db/database.js';
import { EXIT, isDatabaseError, isTransient, PgferryError, SQLSTATE } from '../../errors.js';
import type { Mapping } from '../../mappings/mapping-file.js';

/**
 * transform: ferry.transform runs the load's compiled mapping over its staged rows, as the
 * tenant, in one transaction: valid rows to the work table, each failure a reject. Fenced by
 * the process's claim epoch (ferry.check_claim), which holds the load's row until it commits.
 */
export async function transform(pool: pg.Pool, loadId: number, claimEpoch: number): Promise<void> {
  await withTransaction(
    pool,
    async (client) => {
      await client.query('select ferry.check_claim($1, $2)', [loadId, claimEpoch]);
      await client.query('select ferry.transform($1)', [loadId]);
    },
    { tenantCode: true },
  );
}

/** A mapping that failed while running, not on a value: reported with its file and line. */
export function mappingRuntimeError(error: unknown, mapping: Mapping): unknown {
  if (!isDatabaseError(error) || isTransient(error) || error.code === SQLSTATE.claimTakenOver) return error;
  return new PgferryError(`mapping ${mapping.name} failed while running: ${error.message}`, {
    exitCode: EXIT.loadFailed,
    location: { file: mapping.path, line: mapping.selectLine },
    hint: 'values that make the mapping fail (casts, division) only reject their line; this error is not about a value',
    cause: error,
  });
}
