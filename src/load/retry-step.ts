import { isTransient } from '../errors.js';
import { describeForCatalog } from './describe-for-catalog.js';
import type { LoadRun } from './load-run.js';
import type { Step } from './types.js';

/** Pauses before the retries of a step that failed for a passing reason (4 retries, 15 s). */
export const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];

/**
 * Runs a step, and after a dropped connection, a server restart, a deadlock or a
 * serialization failure tries it again, after a pause, a few times. Each step can run again
 * (staging from its checkpoint, the others are one transaction each).
 */
export async function retryStep<T>(
  run: Pick<LoadRun, 'emit' | 'claim'>,
  step: Step | 'compile',
  fn: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (!isTransient(error) || attempt >= RETRY_DELAYS_MS.length + 1) throw error;
      const delay = RETRY_DELAYS_MS[attempt - 1];
      run.emit({ type: 'retry', step, attempt, delayMs: delay, error: describeForCatalog(error) });
      await new Promise((resolve) => setTimeout(resolve, delay));
      await run.claim.ensure().catch(() => {});
    }
  }
}
