import type pg from 'pg';

import { isTransient } from '../errors.js';
import { checkInterruption } from './interruption.js';
import type { LoadRun } from './load-run.js';
import { LoadSteps } from './load-steps.js';
import { progressReporter } from './progress.js';
import { retryStep } from './retry-step.js';
import { endRun, isTakenOver, type RunEnd, runEndOf } from './run-end.js';
import { cleanup } from './steps/cleanup.js';
import { compile, stagingTableOf } from './steps/compile.js';
import type { LoadResult } from './types.js';

/**
 * Every step of a load from `run.from` on, to its result, audit line included:
 * compile → stage → transform → (reject thresholds) → promote and verify → cleanup.
 */
export async function runLoad(pool: pg.Pool, given: LoadRun): Promise<LoadResult> {
  const run = watched(given);
  const { loadId } = run;
  // Compile before any data moves: a broken mapping is reported with its file and line.
  let stagingTable: string;
  try {
    stagingTable =
      run.from.step === 'compile'
        ? await retryStep(run, 'compile', () => compile(pool, loadId, run.mapping, run.columns, run.claim.epoch))
        : await stagingTableOf(pool, loadId);
  } catch (error) {
    // The server gone for longer than the retries, or the load taken over meanwhile: it ends
    // as any step would then (resumable, or left to the other process), not as a mapping error.
    if (!isTransient(error) && !isTakenOver(error)) throw error;
    return endRun(pool, run, runEndOf(error, loadId), { timings: {}, cleanup: () => cleanup(pool, loadId) });
  }
  const steps = new LoadSteps(pool, run, stagingTable);
  let end: RunEnd;
  try {
    await steps.stage();
    await steps.transform();
    const tooManyRejects = await steps.thresholdBeforePromotion();
    end = tooManyRejects ? { status: 'failed', failure: tooManyRejects } : await steps.promoteAndVerify();
  } catch (error) {
    end = runEndOf(error, loadId);
  }
  return endRun(pool, run, end, steps);
}

/**
 * The run whose every event is also written as progress and is a batch boundary (a staging
 * chunk, a promotion batch, a step), where `pgferry cancel`, or a worker's SIGTERM, stops it.
 */
function watched(given: LoadRun): LoadRun {
  const report = progressReporter(given.claim, given.loadId, given.options.runner);
  return {
    ...given,
    emit: (event) => {
      given.emit(event);
      report(event);
      if (event.type !== 'step' || event.step !== 'cleanup') checkInterruption(given.claim);
    },
  };
}
