import { Command } from 'commander';

import { EXIT } from '../errors.js';
import { resume } from '../load/resume.js';
import { MAX_JOBS } from '../load/staging-jobs.js';
import { formatLoadResult } from '../report/load-summary.js';
import { ProgressBar } from '../report/progress-bar.js';
import { formatNumber } from '../report/text-table.js';
import { type GlobalOptions, setExitCode, stdio, terminalWidth, wholeNumber, withDatabase } from './context.js';
import { showLoadEvents } from './load-events.js';
import { loadExitCode } from './load-exit-code.js';

export function resumeCommand(global: () => GlobalOptions): Command {
  return new Command('resume')
    .description('finish an interrupted load from where it stopped (pgferry loads shows it as interrupted)')
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option(
      '-j, --jobs <n>',
      `parallel COPY streams for what is left to stage, 1-${MAX_JOBS} (default: the number of CPU cores, at most ${MAX_JOBS})`,
      wholeNumber('--jobs'),
    )
    .option(
      '--batch-size <rows>',
      'rows per promotion batch (each under a savepoint)',
      wholeNumber('--batch-size'),
      10000,
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Staging resumes after the load's last checkpoint: the file is read again from its start (it
must be unchanged: same sha256) but only later records are sent; then the steps after it run
with the mapping version the load started with. A load that had finished is left as it is
(exit 0). Exit codes: 0 finished, 1 the load failed or was cancelled, 2 it cannot be resumed (unknown, still
running, failed before, or its file changed).

Examples:
  pgferry resume 42
  pgferry resume 42 --jobs 1 --json`,
    )
    .action(async (id: number, opts) => {
      const progress = new ProgressBar();
      const outcome = await withDatabase(global(), (db) =>
        resume(db.pool, id, {
          jobs: opts.jobs,
          batchSize: opts.batchSize,
          onEvent: showLoadEvents(progress, { json: true }),
        }),
      ).finally(() => progress.done());
      if (opts.json) {
        stdio.out(JSON.stringify(outcome, null, 2));
      } else if (outcome.outcome === 'finished') {
        stdio.out(`load ${id} had already finished (${outcome.status}): nothing to do`);
      } else {
        const lost = 'a server crash had emptied its staging table';
        const where = outcome.restaged
          ? outcome.from === 'stage'
            ? `staging from line 1: ${lost}`
            : `the transform, after staging again from line 1: ${lost}`
          : outcome.from === 'stage'
            ? `staging after line ${formatNumber(outcome.checkpointLine)}`
            : outcome.from === 'transform'
              ? 'the transform (staging was complete)'
              : 'the start (nothing was staged)';
        stdio.out(`resumed load ${id} at ${where}\n${formatLoadResult(outcome.result, { width: terminalWidth() })}`);
      }
      if (outcome.outcome === 'resumed' && loadExitCode(outcome.result.status) !== EXIT.ok) {
        setExitCode(loadExitCode(outcome.result.status));
      }
    });
}
