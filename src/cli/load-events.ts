import type { LoadEvent, Step } from '../load/types.js';
import type { ProgressBar } from '../report/progress-bar.js';
import { stdio } from './context.js';

/** The steps after staging, whose rows are not counted as they go: what the bar says of each. */
const STEP_LABELS: Record<Exclude<Step, 'stage'>, string> = {
  transform: 'transforming',
  promote: 'promoting',
  verify: 'verifying',
  cleanup: 'cleaning up',
};
const STEP_DOINGS: Record<Exclude<Step, 'stage'>, string> = {
  transform: 'the mapping, type checks, keys and duplicates, in PostgreSQL',
  promote: 'planning what to insert and update, as the tenant',
  verify: 'checking that the counts reconcile',
  cleanup: 'dropping the staging and work tables',
};

/**
 * What `load`, `validate` and `resume` show while a load runs: the progress bar, whom it waits
 * for, the retries of passing faults, and (unless the output is JSON) the load's id.
 */
export function showLoadEvents(progress: ProgressBar, options: { json?: boolean } = {}) {
  return (event: LoadEvent): void => {
    switch (event.type) {
      case 'registered':
        if (!options.json) stdio.err(`load ${event.loadId} registered`);
        break;
      case 'stage-progress':
        progress.update('staging', event.bytesRead, event.totalBytes, event.rowsRead);
        break;
      case 'promote-progress':
        progress.update('promoting', event.done, event.total, event.done, 'rows');
        break;
      case 'step':
        progress.done();
        if (event.step !== 'stage') progress.activity(STEP_LABELS[event.step], STEP_DOINGS[event.step]);
        break;
      case 'waiting':
        progress.done();
        stdio.err(
          event.forLoad
            ? `waiting for load ${event.forLoad} (same tenant and table) to finish promoting…`
            : 'waiting for another load or rollback of the same tenant and table to finish…',
        );
        break;
      case 'restage':
        progress.done();
        stdio.err('a server crash emptied the staging table (UNLOGGED): staging again from line 1');
        break;
      case 'retry':
        progress.done();
        stdio.err(`${event.step}: ${event.error} — trying again in ${event.delayMs / 1000} s (retry ${event.attempt})`);
        break;
    }
  };
}
