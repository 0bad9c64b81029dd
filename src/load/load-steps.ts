import type pg from 'pg';

import { loadCounts } from './load-counts.js';
import type { LoadRun } from './load-run.js';
import { promoteAndVerify, type PromotionOutcome } from './promotion.js';
import { thresholdBeforePromotion } from './reject-threshold.js';
import { retryStep } from './retry-step.js';
import { cleanup } from './steps/cleanup.js';
import { stage } from './steps/stage.js';
import { stagingCheckpoint, stagingLost } from './steps/staging-checkpoint.js';
import { mappingRuntimeError, transform } from './steps/transform.js';
import type { Step } from './types.js';

/**
 * The steps of one run of a load, each announced and timed, and tried again after a passing
 * failure. A server crash empties the UNLOGGED staging and work tables: a step tried again
 * after one stages the source again from its first line (the checkpoint is reset) first.
 */
export class LoadSteps {
  /** How long each step took: written to the catalog at the end (the promotion's transaction holds the load's row). */
  readonly timings: Partial<Record<Step, number>> = {};
  /** The records staging read: the reject rate's denominator. */
  private staged: { rowsRead: number } = { rowsRead: 0 };

  constructor(
    private readonly pool: pg.Pool,
    private readonly run: LoadRun,
    private readonly stagingTable: string,
  ) {}

  readonly timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
    this.run.emit({ type: 'step', step });
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.timings[step] = Math.round(performance.now() - started);
    }
  };

  /** stage, from where the run starts; resuming after staging, only a lost staging is staged again. */
  async stage(): Promise<void> {
    const { run, pool } = this;
    this.staged =
      run.from.step === 'transform'
        ? ((await this.restagedIfLost()) ?? { rowsRead: (await loadCounts(pool, run.loadId)).read })
        : await this.stageFrom(run.from);
  }

  async transform(): Promise<void> {
    await this.timed('transform', () =>
      retryStep(this.run, 'transform', async (attempt) => {
        if (attempt > 1) this.staged = (await this.restagedIfLost()) ?? this.staged;
        await transform(
          this.pool,
          this.run.loadId,
          this.run.mapping,
          this.run.claim.epoch,
          this.run.options.mappingTimeoutMs,
        );
      }),
    ).catch((error) => {
      throw mappingRuntimeError(error, this.run.mapping);
    });
  }

  /** Why the load must promote nothing, counting what transform rejected; undefined if it may go on. */
  thresholdBeforePromotion(): Promise<string | undefined> {
    return thresholdBeforePromotion(this.pool, this.run.loadId, this.staged.rowsRead, this.run.options);
  }

  /** promote and verify, in one transaction. */
  promoteAndVerify(): Promise<PromotionOutcome> {
    return retryStep(this.run, 'promote', async (attempt) => {
      const restaged = attempt > 1 ? await this.restagedIfLost() : undefined;
      if (restaged) {
        this.staged = restaged;
        await this.transform();
      }
      return promoteAndVerify(this.pool, this.run, this.staged.rowsRead, this.timed);
    });
  }

  async cleanup(): Promise<void> {
    await this.timed('cleanup', () => cleanup(this.pool, this.run.loadId));
  }

  private stageFrom(from: LoadRun['from']): Promise<{ rowsRead: number }> {
    return this.timed('stage', () =>
      retryStep(this.run, 'stage', async (attempt) =>
        // A retry goes on from the last checkpoint, as `pgferry resume` does (from line 1 if
        // the staging was lost: resume_staging, behind stagingCheckpoint, resets it then).
        stage(this.pool, this.run, this.stagingTable, attempt === 1 ? from : await this.checkpointToRetryFrom()),
      ),
    );
  }

  /** Where a stage step's retry goes on from. */
  private async checkpointToRetryFrom(): Promise<LoadRun['from']> {
    if (await stagingLost(this.pool, this.run.loadId)) this.run.emit({ type: 'restage' });
    return await stagingCheckpoint(this.pool, this.run.loadId);
  }

  /** Before a later step: the new staging's counts; undefined when nothing was lost. */
  private async restagedIfLost(): Promise<{ rowsRead: number } | undefined> {
    if (!(await stagingLost(this.pool, this.run.loadId))) return undefined;
    this.run.emit({ type: 'restage' });
    return await this.stageFrom(await stagingCheckpoint(this.pool, this.run.loadId));
  }
}
