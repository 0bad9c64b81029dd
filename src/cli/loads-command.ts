import { Command } from 'commander';

import { getLoad, listLoads } from '../catalog.js';
import { formatMs, formatNumber, textTable } from '../report/text-table.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

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
              l.parseRejects + l.rowsRejected,
              l.inserted,
              l.updated,
              l.unchanged,
            ]),
          ),
        );
    });
}

export function statusCommand(global: () => GlobalOptions): Command {
  return new Command('status')
    .description('show one load: status, steps and timings, counts')
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pgferry status 42')
    .action(async (id: number, opts) => {
      const l = await withDatabase(global(), (db) => getLoad(db.pool, id));
      if (opts.json) {
        stdio.out(JSON.stringify(l, null, 2));
        return;
      }
      const promoted = l.inserted + l.updated + l.unchanged;
      stdio.out(
        [
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
          `read ${formatNumber(l.rowsRead)} = staged ${formatNumber(l.rowsStaged)} + unparseable ${formatNumber(l.parseRejects)}`,
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
          .join('\n'),
      );
    });
}
