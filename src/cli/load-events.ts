import type { LoadEvent } from '../load/types.js';
import type { ProgressBar } from '../report/progress-bar.js';
import { stdio } from './context.js';

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
