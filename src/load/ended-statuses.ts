/** Statuses a load does not leave. */
export const ENDED_STATUSES: ReadonlySet<string> = new Set([
  'succeeded',
  'failed',
  'dry_run',
  'rolled_back',
  'cancelled',
]);
