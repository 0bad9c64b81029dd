import { parseCronItem } from 'graphile-worker';

/** A year of minutes: a schedule that matches none (31 February) has no next run. */
const HORIZON_MINUTES = 366 * 24 * 60;

/**
 * When a cron schedule fires next after `from`, as the worker's crontab reads it (graphile-worker:
 * five fields, in UTC); null if not within a year.
 */
export function nextRun(schedule: string, from: Date = new Date()): Date | null {
  const { match } = parseCronItem({ task: 'next', match: schedule });
  const at = new Date(from);
  at.setUTCSeconds(0, 0);
  for (let i = 0; i < HORIZON_MINUTES; i++) {
    at.setUTCMinutes(at.getUTCMinutes() + 1);
    const digest = {
      min: at.getUTCMinutes(),
      hour: at.getUTCHours(),
      date: at.getUTCDate(),
      month: at.getUTCMonth() + 1,
      dow: at.getUTCDay(),
    };
    if (match(digest)) return new Date(at);
  }
  return null;
}
