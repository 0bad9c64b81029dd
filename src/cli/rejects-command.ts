import { Command } from 'commander';

import { listRejects } from '../catalog.js';
import { rejectTable } from '../report/reject-table.js';
import { writeRejectsCsv } from '../report/write-rejects-csv.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

export function rejectsCommand(global: () => GlobalOptions): Command {
  return new Command('rejects')
    .description("show a load's rejected rows with their reasons, or write them as a CSV to fix and reload")
    .argument('<load>', 'load id', wholeNumber('load id'))
    .option('-o, --output <file>', 'write a CSV: the original columns, then pgferry_line, pgferry_reasons, pgferry_raw')
    .option('-n, --limit <n>', 'rows to show on screen', wholeNumber('--limit'), 50)
    .option('--json', 'print every reject as JSON')
    .addHelpText(
      'after',
      `
The CSV from -o has the source's own header, so after fixing the values it loads again with
the same mapping (the extra pgferry_* columns are ignored by the mapping). Lines that could
not be parsed at all have their text in pgferry_raw instead.

Examples:
  pgferry rejects 42
  pgferry rejects 42 -o rejects.csv`,
    )
    .action(async (id: number, opts) => {
      await withDatabase(global(), async (db) => {
        if (opts.output) {
          const { rows } = await writeRejectsCsv(db.pool, id, opts.output);
          stdio.out(`${rows} rejected lines written to ${opts.output}`);
          return;
        }
        const rejects = await listRejects(db.pool, id, opts.json ? undefined : opts.limit);
        if (opts.json) stdio.out(JSON.stringify(rejects, null, 2));
        else if (rejects.length === 0) stdio.out(`load ${id} has no rejects`);
        else stdio.out(rejectTable(rejects));
      });
    });
}
