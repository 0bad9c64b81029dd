import { Command } from 'commander';

import { listAudit } from '../audit.js';
import { textTable } from '../report/text-table.js';
import { type GlobalOptions, InvalidOption, stdio, wholeNumber, withDatabase } from './context.js';

export function auditCommand(global: () => GlobalOptions): Command {
  return new Command('audit')
    .description('show who changed what: loads, rollbacks, tenants, protected tables, prunes, migrations')
    .option('-t, --tenant <tenant>', 'only this tenant')
    .option('--since <when>', 'only since a date (2026-11-01) or for a time back (7d, 12h, 30m)', parseSince)
    .option('-n, --limit <n>', 'how many lines, newest first', wholeNumber('--limit'), 50)
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  pgferry audit\n  pgferry audit --tenant acme --since 7d --json')
    .action(async (opts) => {
      const entries = await withDatabase(global(), (db) =>
        listAudit(db.pool, { tenant: opts.tenant, since: opts.since, limit: opts.limit }),
      );
      if (opts.json) stdio.out(JSON.stringify(entries, null, 2));
      else if (entries.length === 0) stdio.out('no audit lines match');
      else
        stdio.out(
          textTable(
            ['at', 'os user', 'role', 'command', 'tenant', 'load', 'outcome', 'details'],
            entries.map((e) => [
              e.at.toISOString().slice(0, 19).replace('T', ' '),
              e.osUser,
              e.dbRole,
              e.command,
              e.tenant,
              e.loadId,
              e.outcome,
              JSON.stringify(e.details),
            ]),
          ),
        );
    });
}

function parseSince(value: string): Date {
  const ago = /^(\d+)([dhm])$/.exec(value);
  if (ago) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[ago[2] as 'd' | 'h' | 'm'];
    return new Date(Date.now() - Number(ago[1]) * unit);
  }
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidOption(`--since must be a date (2026-11-01) or a time back (7d, 12h, 30m), not "${value}"`);
  }
  return date;
}
