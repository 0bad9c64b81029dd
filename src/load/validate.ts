import type pg from 'pg';

import { load } from './load.js';
import { thresholdProblem } from './reject-threshold.js';
import type { LoadOptions, LoadResult } from './types.js';

/** What validate() takes: a load's options, less those that make no sense for a check. */
export type ValidateOptions = Omit<LoadOptions, 'dryRun' | 'force' | 'queue' | 'keepStaging' | 'sync'>;

/**
 * `pgferry validate`: checks a file (or a source database's rows) without loading it. Runs
 * every step of a load — staging, the mapping, every check, the promotion's plan and its
 * writes — then rolls it all back, and returns what a load would do: status `dry_run` with
 * every reject (`rejects`, each with where it is and why), what would be inserted, updated,
 * left unchanged; `failed` when the rejects cross `maxRejects` or `maxRejectRate` (every step
 * runs all the same, so that every reject is found) or the load would fail. A file loaded
 * before is validated again. Nothing is left behind — no load, no mapping version, no staging
 * table, not even when the mapping fails; one line in ferry.audit says it ran.
 *
 * @example
 *   const checked = await validate(pool, { file: 'catalog.csv', tenant: 'acme', mapping: 'products', maxRejects: 0 });
 *   for (const r of checked.rejects ?? []) console.log(r.where, r.rule, r.message);
 */
export async function validate(pool: pg.Pool, options: ValidateOptions): Promise<LoadResult> {
  const { maxRejects, maxRejectRate, ...checked } = options;
  const result = await load(pool, { ...checked, dryRun: true, force: true });
  if (result.status !== 'dry_run') return result;
  const { read, unparseable, rejected } = result.counts;
  const problem = thresholdProblem(unparseable + rejected, read, { ...options, maxRejects, maxRejectRate });
  if (!problem) return result;
  return {
    ...result,
    status: 'failed',
    error: problem.replace(/nothing was promoted$/, 'a load would promote nothing'),
  };
}
