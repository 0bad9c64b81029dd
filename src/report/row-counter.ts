import { formatNumber, printable } from './text-table.js';

/**
 * A one-line row count on stderr, redrawn at most ten times a second, for commands that
 * stream rows (export, tenant backup and restore); `done()` clears it.
 */
export function rowCounter(verb: string) {
  let last = 0;
  let drawn = false;
  return {
    update: (rows: number, what = '') => {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      drawn = true;
      process.stderr.write(`\r${verb}${what ? ` ${printable(what)}` : ''}  ${formatNumber(rows)} rows\x1b[K`);
    },
    done: () => {
      if (drawn) process.stderr.write('\r\x1b[K');
    },
  };
}
