import { Command } from 'commander';

import { getLoad, listLoads, type LoadSummary } from '../catalog.js';
import { EXIT } from '../errors.js';
import { followLoad, type LoadSnapshot } from '../report/follow-load.js';
import { ProgressBar } from '../report/progress-bar.js';
import { formatMs, formatNumber, textTable } from '../report/text-table.js';
import { type GlobalOptions, setExitCode, stdio, wholeNumber, withDatabase } from './context.js';

export function loadsCommand(global: () => GlobalOptions): Command {
  return new Command('loads')
    .description('list recent loads with their status and counts')
    .option('-t, --tenant <tenant>', 'only this tenant')
    .option('-n, --limit <n>', 'how many', wholeNumber('--limit'), 20)
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  pgferry loads\n  pgferry loads --tenant acme -n 5 --json')
    .action(async (opts) => {
      const loads = await withDatabase(global(), (db) =>
        listLoads(db.pool, { tenant: opts.tenant, limit: opts.limit }),
      );
      if (opts.json) stdio.out(JSON.stringify(loads, null, 2));
      else if (loads.length === 0) stdio.out('no loads yet: pgferry load FILE --tenant T --mapping M');
      else
        stdio.out(
          textTable(
            ['id', 'started', 'tenant', 'mapping', 'status', 'read', 'rejected', 'inserted', 'updated', 'unchanged'],
            loads.map((l) => [
              l.id,
              l.createdAt.toISOString().slice(0, 19).replace('T', ' '),
              l.tenant,
              `${l.mapping} v${l.mappingVersion}`,
              l.status,
              l.rowsRead,
              l.unparseable + l.rowsRejected,
              l.inserted,
              l.updated,
              l.unchanged,
            ]),
          ),
        );
    });
}

/** Statuses `status --follow` ends with exit code 1: the load did not do what it was asked to. */
const UNSUCCESSFUL = new Set(['failed', 'cancelled', 'interrupted']);

export function statusCommand(global: () => GlobalOptions): Command {
  return new Command('status')
    .description('show one load: status, steps and timings, counts')
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option('-f, --follow', 'wait until the load ends, showing its progress and each change of status on stderr')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
With --follow, a queued or running load is watched until it ends (or is interrupted: its
process is gone), then shown as without it; --json prints only the final JSON. Exit codes
with --follow: 0 the load ended (succeeded, dry_run, rolled_back), 1 it failed, was cancelled
or was interrupted, 2 there is no such load.

Examples:
  pgferry status 42
  pgferry status 42 --follow
  pgferry status 42 --follow --json`,
    )
    .action(async (id: number, opts: { follow?: boolean; json?: boolean }) => {
      const l = await withDatabase(global(), async (db) => {
        if (opts.follow) {
          const show = showFollowing(Boolean(opts.json));
          try {
            await followLoad(db.pool, id, { onChange: show.change });
          } finally {
            show.done();
          }
        }
        return getLoad(db.pool, id);
      });
      if (opts.json) stdio.out(JSON.stringify(l, null, 2));
      else stdio.out(formatLoadStatus(l));
      if (!opts.follow) return;
      if (l.status === 'interrupted' && !opts.json) {
        stdio.err(`load ${l.id} was interrupted: its process is gone (pgferry resume ${l.id} finishes it)`);
      }
      if (UNSUCCESSFUL.has(l.status)) setExitCode(EXIT.loadFailed);
    });
}

/**
 * What `status --follow` shows on stderr while it waits: a line per change of status, and
 * the progress bar while the load stages (bytes) or promotes (rows). Nothing with --json.
 */
function showFollowing(json: boolean): { change: (snapshot: LoadSnapshot) => void; done: () => void } {
  let status: string | undefined;
  let warnedNoWorker = false;
  let bar = new ProgressBar();
  let barStep: string | undefined;
  // The rows done when the bar started: its rate counts only what it saw happen.
  let rowsBefore = 0;
  return {
    change(snapshot) {
      if (json) return;
      if (snapshot.status !== status) {
        bar.done();
        stdio.err(`load ${snapshot.loadId}: ${snapshot.status}`);
        status = snapshot.status;
      }
      if (snapshot.workerRunning === false && !warnedNoWorker) {
        // As plan run says it: a queued load waits for a worker, silently otherwise.
        stdio.err(
          'no pgferry worker is running on this database: the load is queued, and runs once one starts (pgferry worker)',
        );
        warnedNoWorker = true;
      }
      const p = snapshot.progress;
      const unit =
        p?.step === 'stage' && snapshot.status === 'staging'
          ? 'bytes'
          : p?.step === 'promote' && snapshot.status === 'promoting'
            ? 'rows'
            : undefined;
      if (!p || !unit) return;
      if (barStep !== p.step) {
        bar.done();
        bar = new ProgressBar();
        barStep = p.step;
        rowsBefore = p.rows;
      }
      bar.update(snapshot.status, p.done, p.total, p.rows - rowsBefore, unit);
    },
    done: () => bar.done(),
  };
}

/** A load as `pgferry status` prints it. */
export function formatLoadStatus(l: LoadSummary): string {
  const promoted = l.inserted + l.updated + l.unchanged;
  return [
    `load ${l.id}: ${l.status}`,
    `  tenant    ${l.tenant}`,
    `  mapping   ${l.mapping} v${l.mappingVersion}`,
    `  source    ${l.source}`,
    `  sha256    ${l.fileSha256 ?? '-'}`,
    `  started   ${l.createdAt.toISOString()}`,
    `  finished  ${l.finishedAt ? l.finishedAt.toISOString() : '-'}`,
    `  checkpoint line ${formatNumber(l.checkpointLine)}`,
    l.error ? `  error     ${l.error}` : '',
    '',
    textTable(
      ['step', 'time'],
      ['stage', 'transform', 'promote', 'verify', 'cleanup'].map((s) => [s, formatMs(l.timings[s])]),
    ),
    '',
    `read ${formatNumber(l.rowsRead)} = staged ${formatNumber(l.rowsStaged)} + unparseable ${formatNumber(l.unparseable)}`,
    ...(l.status === 'succeeded' || l.status === 'dry_run'
      ? [
          `staged ${formatNumber(l.rowsStaged)} = promoted ${formatNumber(promoted)} + duplicates ${formatNumber(l.duplicates)} + rejected ${formatNumber(l.rowsRejected)}`,
          `promoted ${formatNumber(promoted)} = inserted ${formatNumber(l.inserted)} + updated ${formatNumber(l.updated)} + unchanged ${formatNumber(l.unchanged)}`,
        ]
      : [
          `staged ${formatNumber(l.rowsStaged)}: duplicates ${formatNumber(l.duplicates)}, rejected ${formatNumber(l.rowsRejected)}; nothing was promoted`,
        ]),
  ]
    .filter((line, i, all) => line !== '' || all[i - 1] !== '')
    .join('\n');
}
