import os from 'node:os';

import { PgferryError } from '../errors.js';

export const MAX_JOBS = 8;

/** How many parallel COPY streams stage a load: as asked, or one per CPU core up to MAX_JOBS. */
export function stagingJobs(jobs: number | undefined): number {
  if (jobs === undefined) return Math.min(os.availableParallelism(), MAX_JOBS);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > MAX_JOBS) {
    throw new PgferryError(`jobs must be a whole number from 1 to ${MAX_JOBS}, not ${jobs}`);
  }
  return jobs;
}
