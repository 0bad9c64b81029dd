import { Command } from 'commander';

import { EXIT } from '../errors.js';
import { pruneUndo } from '../prune.js';
import { formatNumber } from '../report/text-table.js';
import { rollback, type RollbackResult } from '../rollback.js';
import { type GlobalOptions, InvalidOption, setExitCode, stdio, wholeNumber, withDatabase } from './context.js';

/** Conflicting keys printed before "… and N more". */
const SHOWN_CONFLICTS = 20;

export function rollbackCommand(global: () => GlobalOptions): Command {
  return new Command('rollback')
    .description('revert a succeeded load from its undo log: delete the rows it inserted, restore those it updated')
    .argument('<load>', 'load id (pgferry loads)', wholeNumber('load id'))
    .option('--force', 'restore even rows changed or deleted since the load wrote them')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The rollback runs in one transaction, as the load's tenant, and waits for any load of the same
tenant and table to finish. A row that a later load or any other write changed (or deleted)
since this load wrote it is a conflict: the rollback then changes nothing and lists those keys,
unless --force. Rolling back a load twice does nothing the second time. Interrupted (Ctrl-C,
a lost connection), it stops on the server too, within a second, and undoes nothing. Exit
codes: 0 rolled back (or already), 1 refused because of conflicts, 2 no such load or not a
succeeded one.

Examples:
  pgferry rollback 42
  pgferry rollback 42 --force --json`,
    )
    .action(async (id: number, opts) => {
      const result = await withDatabase(global(), (db) => rollback(db.pool, id, { force: opts.force }));
      stdio.out(opts.json ? JSON.stringify(result, null, 2) : formatRollback(result));
      if (result.outcome === 'conflicts') setExitCode(EXIT.loadFailed);
    });
}

function formatRollback(r: RollbackResult): string {
  if (r.outcome === 'already_rolled_back') return `load ${r.loadId} was already rolled back: nothing to do`;
  const lines: string[] = [];
  if (r.outcome === 'rolled_back') {
    lines.push(
      `load ${r.loadId} rolled back: ${formatNumber(r.deleted)} inserted rows deleted, ` +
        `${formatNumber(r.restored)} updated rows restored`,
    );
    if (r.conflicts.length) lines.push(`(forced over ${formatNumber(r.conflicts.length)} rows changed since the load)`);
    return lines.join('\n');
  }
  lines.push(
    `load ${r.loadId} not rolled back: ${formatNumber(r.conflicts.length)} rows it wrote were changed since; nothing was changed`,
  );
  for (const c of r.conflicts.slice(0, SHOWN_CONFLICTS)) lines.push(`  ${JSON.stringify(c.key)}  ${c.problem}`);
  if (r.conflicts.length > SHOWN_CONFLICTS)
    lines.push(`  … and ${formatNumber(r.conflicts.length - SHOWN_CONFLICTS)} more (--json lists all)`);
  lines.push('restore anyway, over those changes: pgferry rollback --force ' + r.loadId);
  return lines.join('\n');
}

export function pruneCommand(global: () => GlobalOptions): Command {
  return new Command('prune')
    .description('remove the undo logs of old loads (they can then no longer be rolled back)')
    .option('--older-than <age>', 'loads finished more than this long ago: days, as 30d or 30', parseDays, 30)
    .addHelpText('after', '\nExamples:\n  pgferry prune\n  pgferry prune --older-than 7d')
    .action(async (opts) => {
      const result = await withDatabase(global(), (db) => pruneUndo(db.pool, { olderThanDays: opts.olderThan }));
      stdio.out(
        result.loads === 0
          ? `no undo log older than ${opts.olderThan} days`
          : `pruned the undo logs of ${formatNumber(result.loads)} loads (${formatNumber(result.undoRows)} undo rows)`,
      );
    });
}

function parseDays(value: string): number {
  const match = /^(\d+)d?$/.exec(value);
  if (!match) throw new InvalidOption(`--older-than must be a number of days, as 30d, not "${value}"`);
  return Number(match[1]);
}
