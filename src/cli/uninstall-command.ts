import { Command } from 'commander';

import { textTable } from '../report/text-table.js';
import { planUninstall, uninstall, type UninstallItem } from '../uninstall.js';
import { type GlobalOptions, stdio, withDatabase } from './context.js';

export function uninstallCommand(global: () => GlobalOptions): Command {
  return new Command('uninstall')
    .description(
      "list, then with --yes remove, all pgferry made in this database and the server (the application's rows stay)",
    )
    .option('--yes', 'remove it all, in one transaction')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Without --yes, only lists: pgferry's policies on protected tables, the row-level security it
turned on, the privileges it gave its roles, its schemas (ferry, ferry_util, one per tenant,
graphile_worker if only pgferry's jobs used it) and this database's tenant roles
(pgf_<instance>_…; never another database's). The application's tables and rows stay.
Refuses while a load or a worker is running, or while an object of the application depends
on one of pgferry's.

Examples:
  pgferry uninstall
  pgferry uninstall --yes`,
    )
    .action(async (opts) => {
      // Opened without installing: uninstall() upgrades an install it finds, and makes none.
      const options = { ...global(), migrate: false };
      if (!opts.yes) {
        const plan = await withDatabase(options, (db) => planUninstall(db.pool));
        if (opts.json) return stdio.out(JSON.stringify(plan, null, 2));
        if (!plan.installed) return stdio.out('pgferry is not installed in this database: nothing to remove');
        stdio.out(`pgferry uninstall would remove (instance ${plan.instance}):`);
        stdio.out(itemTable(plan.items.filter((i) => i.statement !== null)));
        const kept = plan.items.filter((i) => i.statement === null);
        if (kept.length) stdio.out(`\nand keep:\n${itemTable(kept)}`);
        if (plan.blockers.length) {
          stdio.out(`\nit cannot go ahead now:\n${plan.blockers.map((b) => `  ${b}`).join('\n')}`);
        } else {
          stdio.out("\nThe application's tables and rows stay. Run again with --yes to remove it all.");
        }
        return;
      }
      const result = await withDatabase(options, (db) => uninstall(db.pool));
      if (opts.json) return stdio.out(JSON.stringify(result, null, 2));
      if (result.instance === undefined)
        return stdio.out('pgferry is not installed in this database: nothing to remove');
      stdio.out(`pgferry uninstalled (instance ${result.instance}): ${summary(result.removed)}`);
      for (const item of result.kept) stdio.out(`  kept ${item.kind} ${item.object}: ${item.detail}`);
    });
}

function itemTable(items: UninstallItem[]): string {
  return textTable(
    ['what', 'object', 'detail'],
    items.map((i) => [i.kind, i.object, i.detail]),
  );
}

/** "4 schemas, 3 roles, 6 policies, 2 privileges, row security on 1 table" */
function summary(removed: UninstallItem[]): string {
  const count = (kind: UninstallItem['kind']) => removed.filter((i) => i.kind === kind).length;
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const parts = [
    plural(count('schema'), 'schema', 'schemas'),
    plural(count('role'), 'role', 'roles'),
    plural(count('policy'), 'policy', 'policies'),
    plural(count('privilege'), 'grant', 'grants'),
  ];
  if (count('row security')) parts.push(`row security off on ${plural(count('row security'), 'table', 'tables')}`);
  if (count('jobs')) parts.push("pgferry's queued jobs");
  return `removed ${parts.join(', ')}`;
}
