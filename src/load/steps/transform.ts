import type pg from 'pg';

import { withTransaction } from '../../db/database.js';
import { EXIT, isDatabaseError, isTransient, PgferryError } from '../../errors.js';
import type { Mapping } from '../../mappings/mapping-file.js';

/**
 * transform: ferry.transform runs the load's compiled mapping over its staged rows, as the
 * tenant, in one transaction: valid rows to the work table, each failure a reject.
 */
export async function transform(pool: pg.Pool, loadId: number): Promise<void> {
  await withTransaction(pool, (client) => client.query('select ferry.transform($1)', [loadId]), {
    tenantCode: true,
  });
}

/** A mapping that failed while running, not on a value: reported with its file and line. */
export function mappingRuntimeError(error: unknown, mapping: Mapping): unknown {
  if (!isDatabaseError(error) || isTransient(error)) return error;
  return new PgferryError(`mapping ${mapping.name} failed while running: ${error.message}`, {
    exitCode: EXIT.loadFailed,
    location: { file: mapping.path, line: mapping.selectLine },
    hint: 'values that make the mapping fail (casts, division) only reject their line; this error is not about a value',
    cause: error,
  });
}
