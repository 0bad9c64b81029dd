import type pg from 'pg';

import { load } from './load.js';
import type { LoadOptions, LoadResult } from './types.js';

/** What validate() takes: a load's options, less those that make no sense for a check. */
export type ValidateOptions = Omit<LoadOptions, 'dryRun' | 'force' | 'queue' | 'keepStaging' | 'sync'>;

/**
 * `pgferry validate`: checks a file (or a source database's rows) without loading it. Runs
 * every step of a load — staging, the mapping, every check, the promotion's plan and its
 * writes — then rolls it all back, and returns what a load would do (status `dry_run`: every
 * reject, what would be inserted, updated, left unchanged; or `failed`). A file loaded before
 * is validated again. The target, the catalog and the staging tables are left as they were;
 * one line in ferry.audit says it ran.
 *
 * @example
 *   const checked = await validate(pool, { file: 'catalog.csv', tenant: 'acme', mapping: 'products' });
 *   console.log(checked.status, checked.counts.rejected, checked.reasons);
 */
export async function validate(pool: pg.Pool, options: ValidateOptions): Promise<LoadResult> {
  return load(pool, { ...options, dryRun: true, force: true });
}
