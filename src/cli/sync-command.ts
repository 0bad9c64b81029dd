import { Command } from 'commander';

import { EXIT } from '../errors.js';
import { enqueueSync } from '../jobs/enqueue-sync.js';
import { DEFAULT_PROJECT_FILE, projectSync, readProject } from '../project/project-file.js';
import { formatLoadResult } from '../report/load-summary.js';
import { ProgressBar } from '../report/progress-bar.js';
import { textTable } from '../report/text-table.js';
import { listSyncs } from '../syncs/list-syncs.js';
import { pauseSync, unpauseSync } from '../syncs/pause-sync.js';
import { runSync } from '../syncs/run-sync.js';
import { type GlobalOptions, setExitCode, stdio, terminalWidth, withDatabase } from './context.js';
import { showLoadEvents } from './load-events.js';
import { loadExitCode } from './load-exit-code.js';

const projectOption = ['--project <file>', 'the project file declaring the syncs', DEFAULT_PROJECT_FILE] as const;

export function syncCommand(global: () => GlobalOptions): Command {
  return new Command('sync')
    .description('run one increment of a sync declared in pgferry.yaml: pull what changed, load it, move the cursor')
    .argument('<name>', 'the sync, as pgferry.yaml names it')
    .option(...projectOption)
    .option('--full', 'pull every row again (mode mirror: then delete what the source no longer has)')
    .option('--dry-run', 'validate the increment and report; promote nothing, leave the cursor')
    .option('--queue', 'leave the run to a worker (pgferry worker) and return at once')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Rows at or after the stored cursor are pulled (inclusive: rows sharing the cursor's value
come back, and their keys make them unchanged); the first run, or --full, pulls all. The
cursor moves in the transaction that promotes the rows, so a crash never skips or doubles
an increment. Exit codes: 0 synced, 1 the load failed or was cancelled, 2 bad usage or project file.

Examples:
  pgferry sync legacy_products
  pgferry sync legacy_products --full
  pgferry sync legacy_products --queue --project etc/pgferry.yaml`,
    )
    .action(async (name: string, opts) => {
      const project = await readProject(opts.project);
      const config = projectSync(project, name);
      await withDatabase(global(), async (db) => {
        if (opts.queue) {
          await enqueueSync(db.pool, project, name, { full: opts.full });
          stdio.out(`sync ${name} queued: a worker runs it (pgferry worker --project ${opts.project})`);
          return;
        }
        const progress = new ProgressBar();
        const synced = await runSync(db.pool, project, name, {
          full: opts.full,
          dryRun: opts.dryRun,
          onEvent: showLoadEvents(progress, { json: opts.json }),
        });
        progress.done();
        if (synced.superseded.length > 0 && !opts.json) {
          stdio.err(
            `an earlier run (load ${synced.superseded.join(', ')}) was interrupted before promoting: pulled again`,
          );
        }
        if (opts.json) stdio.out(JSON.stringify(synced, null, 2));
        else {
          stdio.out(
            `sync ${name}: ${synced.full ? 'full pull' : `rows with ${config.cursor} >= ${synced.cursorFrom}`}`,
          );
          stdio.out(formatLoadResult(synced.result, { width: terminalWidth() }));
        }
        if (loadExitCode(synced.result.status) !== EXIT.ok) setExitCode(loadExitCode(synced.result.status));
      });
    });
}

export function syncsCommand(global: () => GlobalOptions): Command {
  return new Command('syncs')
    .description('list the syncs of pgferry.yaml: cursor, last run and its outcome, next run, paused or not')
    .option(...projectOption)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nSchedules are cron lines read in UTC.\n\nExamples:\n  pgferry syncs\n  pgferry syncs --json',
    )
    .action(async (opts) => {
      const project = await readProject(opts.project);
      const rows = await withDatabase(global(), (db) => listSyncs(db.pool, project));
      if (opts.json) return stdio.out(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return stdio.out(`no syncs in ${project.path}`);
      const time = (d: Date | null) => (d ? d.toISOString().slice(0, 16).replace('T', ' ') : '-');
      stdio.out(
        textTable(
          ['sync', 'tenant', 'mode', 'schedule', 'cursor', 'last run', 'outcome', 'next run'],
          rows.map((r) => [
            r.name,
            r.tenant,
            r.mode,
            r.schedule ?? 'manual',
            r.cursor ?? '-',
            time(r.lastRun),
            r.lastOutcome ? `${r.lastOutcome}${r.lastLoad ? ` (load ${r.lastLoad})` : ''}` : 'never run',
            r.paused ? 'paused' : time(r.nextRun),
          ]),
        ),
      );
    });
}

/** pause / unpause: stop and restart a sync's schedule (a manual `pgferry sync` still runs it). */
export function pauseCommands(global: () => GlobalOptions): Command[] {
  const make = (pause: boolean) =>
    new Command(pause ? 'pause' : 'unpause')
      .description(
        pause
          ? "pause a sync's schedule: the worker's crontab skips it until unpaused"
          : "restart a paused sync's schedule",
      )
      .argument('<sync>', 'the sync, as pgferry.yaml names it')
      .option(...projectOption)
      .addHelpText('after', `\nExample:\n  pgferry ${pause ? 'pause' : 'unpause'} legacy_products`)
      .action(async (name: string, opts) => {
        const project = await readProject(opts.project);
        // An unknown sync is reported before the database is opened.
        projectSync(project, name);
        await withDatabase(global(), (db) => (pause ? pauseSync : unpauseSync)(db.pool, project, name));
        stdio.out(pause ? `sync ${name} paused: its schedule is skipped` : `sync ${name} runs on its schedule again`);
      });
  return [make(true), make(false)];
}
