import os from 'node:os';

import { Command } from 'commander';

import { followLoad } from '../report/follow-load.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

export function cancelCommand(global: () => GlobalOptions): Command {
  return new Command('cancel')
    .description('cancel a queued or running load: a running one stops at its next batch and rolls back')
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option('--no-wait', 'ask a running load to stop, and return without waiting for it')
    .addHelpText('after', '\nExamples:\n  pgferry cancel 42\n  pgferry cancel 42 --no-wait')
    .action(async (id: number, opts) => {
      await withDatabase(global(), async (db) => {
        const { rows } = await db.pool.query<{ done: string }>('select ferry.request_cancel($1, $2) as done', [
          id,
          os.userInfo().username,
        ]);
        const done = rows[0].done;
        if (done === 'cancelled') {
          // Its job finds it cancelled and does nothing; removed so that it does not linger.
          await db.pool.query(`select graphile_worker.remove_job($1)`, [`pgferry_load:${id}`]).catch(() => {});
          return stdio.out(`load ${id} cancelled`);
        }
        if (done !== 'requested') return stdio.out(`load ${id} had already ended: ${done.replace(/^ended /, '')}`);
        if (!opts.wait) return stdio.out(`load ${id}: asked to stop at its next batch`);
        stdio.err(`load ${id}: asked to stop at its next batch; waiting…`);
        const final = await followLoad(db.pool, id, { onChange: () => {} });
        stdio.out(
          final.status === 'cancelled'
            ? `load ${id} cancelled: nothing was promoted`
            : `load ${id} ended ${final.status} before it could stop`,
        );
      });
    });
}
