import { EXIT } from '../errors.js';
import type { LoadResult } from '../load/types.js';

/**
 * The exit code for how a load run by the CLI ended: a load that failed or was cancelled
 * (`pgferry cancel`: nothing promoted) exits 1, as `status --follow` does for it; succeeded,
 * dry_run, skipped and queued exit 0.
 *
 * @example
 *   setExitCode(loadExitCode(result));
 */
export function loadExitCode(status: LoadResult['status']): number {
  return status === 'failed' || status === 'cancelled' ? EXIT.loadFailed : EXIT.ok;
}
