import { Command } from 'commander';

import { cancelLoad } from '../load/cancel-load.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

export function cancelCommand(global: () => GlobalOptions): Command {
  return new Command('cancel')
    .description('cancel a queued or running load: a running one stops at its next batch and rolls back')
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option('--no-wait', 'ask a running load to stop, and return without waiting for it')
    .addHelpText('after', '\nExamples:\n  pgferry cancel 42\n  pgferry cancel 42 --no-wait')
    .action(async (id: number, opts) => {
      const cancelled = await withDatabase(global(), (db) =>
        cancelLoad(db.pool, id, {
          wait: opts.wait,
          onWaiting: () => stdio.err(`load ${id}: asked to stop at its next batch; waiting…`),
        }),
      );
      switch (cancelled.outcome) {
        case 'cancelled':
          return stdio.out(`load ${id} cancelled`);
        case 'already_ended':
          return stdio.out(`load ${id} had already ended: ${cancelled.status}`);
        case 'requested':
          return stdio.out(`load ${id}: asked to stop at its next batch`);
        case 'stopped':
          return stdio.out(
            cancelled.status === 'cancelled'
              ? `load ${id} cancelled: nothing was promoted`
              : `load ${id} ended ${cancelled.status} before it could stop`,
          );
      }
    });
}
