import type pg from 'pg';

import { withTransaction } from '../../db/database.js';
import { EXIT, isDatabaseError, isTransient, PgferryError, SQLSTATE } from '../../errors.js';
import type { Mapping } from '../../mappings/mapping-file.js';

/** How long a mapping's SQL may run unless told otherwise (LoadOptions.mappingTimeoutMs). */
export const DEFAULT_MAPPING_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * transform: ferry.transform runs the load's compiled mapping over its staged rows, as the
 * tenant, in one transaction: valid rows to the work table, each failure a reject. Fenced by
 * the process's claim epoch (ferry.check_claim), which holds the load's row until it commits.
 *
 * The statement is bounded by a statement_timeout set here, before it starts: the timer is
 * armed when the statement starts, and a set_config('statement_timeout', …) by the tenant's
 * code inside it only applies to later statements (checked on PostgreSQL 15 and 18; the
 * coordination test proves it), which run after the reset of the session (withTransaction).
 */
export async function transform(
  pool: pg.Pool,
  loadId: number,
  mapping: Mapping,
  claimEpoch: number,
  timeoutMs = DEFAULT_MAPPING_TIMEOUT_MS,
): Promise<void> {
  await withTransaction(
    pool,
    async (client) => {
      await client.query('select ferry.check_claim($1, $2)', [loadId, claimEpoch]);
      await client.query(`select set_config('statement_timeout', $1, true)`, [String(timeoutMs)]);
      try {
        await client.query('select ferry.transform($1)', [loadId]);
      } catch (error) {
        if (isDatabaseError(error) && error.code === '57014' && /statement timeout/.test(error.message))
          throw new PgferryError(`mapping ${mapping.name} ran longer than its timeout of ${duration(timeoutMs)}`, {
            exitCode: EXIT.loadFailed,
            location: { file: mapping.path, line: mapping.selectLine },
            hint: 'raise it with --mapping-timeout SECONDS if the mapping is right to take this long',
            cause: error,
          });
        throw error;
      }
    },
    { tenantCode: true },
  );
}

function duration(ms: number): string {
  if (ms % 60000 === 0) return `${ms / 60000} min`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
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
