import type { LoadClaim } from './claim.js';
import type { LoadEvent } from './types.js';

/** How often a running load writes its progress to ferry.load_progress (and notifies). */
const PROGRESS_INTERVAL_MS = 500;

/**
 * Writes a load's progress where `pgferry status LOAD --follow` reads it: at most every
 * half second, one write at a time, never failing the load (progress is only news).
 */
export function progressReporter(
  claim: Pick<LoadClaim, 'query'>,
  loadId: number,
  worker?: string,
): (event: LoadEvent) => void {
  let last = 0;
  let writing = false;
  let step = 'registered';
  // A step change that came while writing: written right after.
  let pending: [number, number, number] | undefined;
  const write = (done: number, total: number, rows: number, force = false) => {
    const now = Date.now();
    if (writing) {
      if (force) pending = [done, total, rows];
      return;
    }
    if (!force && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    writing = true;
    claim
      .query('select ferry.report_progress($1, $2, $3, $4, $5, $6)', [loadId, step, done, total, rows, worker ?? null])
      .catch(() => {})
      .finally(() => {
        writing = false;
        const next = pending;
        pending = undefined;
        if (next) write(...next, true);
      });
  };
  return (event) => {
    switch (event.type) {
      case 'step':
        step = event.step;
        write(0, 0, 0, true);
        break;
      case 'stage-progress':
        write(event.bytesRead, event.totalBytes, event.rowsRead);
        break;
      case 'promote-progress':
        write(event.done, event.total, event.done);
        break;
    }
  };
}
