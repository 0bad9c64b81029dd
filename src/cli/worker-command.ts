import { existsSync } from 'node:fs';

import { Command } from 'commander';

import { startWorker } from '../jobs/worker.js';
import { DEFAULT_PROJECT_FILE } from '../project/project-file.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';
import { whenNpxParentGone } from './parent-watch.js';

export function workerCommand(global: () => GlobalOptions): Command {
  return new Command('worker')
    .description('run queued loads, syncs (on their schedules too) and plans: graphile-worker, until stopped')
    .option('-c, --concurrency <n>', 'jobs run side by side', wholeNumber('--concurrency'), 4)
    .option('--project <file>', "the project file whose syncs' schedules to run", DEFAULT_PROJECT_FILE)
    .addHelpText(
      'after',
      `
Loads of the same tenant and table share a queue and run one after another; others run side
by side, up to --concurrency. A job failing for a passing reason (the server restarting) is
tried again with backoff; a data error fails its load, never retried. SIGTERM or Ctrl-C:
running loads stop at their next batch, resumable, and the worker exits (a second signal
exits at once); so does a worker started by npx when npx is stopped. A failed job is one line in the log (pgferry --debug worker adds its stack
trace). A worker killed outright is noticed by the others within seconds, and its loads are
taken over and resumed. Schedules are cron lines read in UTC.

Examples:
  pgferry worker
  pgferry worker --concurrency 8 --project etc/pgferry.yaml`,
    )
    .action(async (opts) => {
      const projectFile = existsSync(opts.project) ? opts.project : undefined;
      await withDatabase(global(), async (db) => {
        const worker = await startWorker(db.pool, {
          concurrency: opts.concurrency,
          projectFile,
          debug: global().debug,
          log: (line) => stdio.out(`${new Date().toISOString()} ${line}`),
        });
        const schedules = worker.scheduled.map((s) => `${s.name} (${s.schedule})`).join(', ');
        stdio.out(
          `worker ready, ${opts.concurrency} at a time; ${projectFile ? `syncs on schedule: ${schedules || 'none'}` : `no ${opts.project}: no schedules`}`,
        );
        let signals = 0;
        const onSignal = (signal: string) => {
          if (++signals > 1) process.exit(130);
          stdio.err(`${signal}: stopping at the next batch boundary (again to exit at once)…`);
          void worker.stop();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        // `npx pgferry worker` stopped: npm's SIGTERM reached only the shell between them.
        const unwatch = whenNpxParentGone(() => onSignal('SIGTERM to npx'));
        try {
          await worker.done;
        } finally {
          unwatch();
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
        stdio.out('worker stopped');
      });
    });
}
