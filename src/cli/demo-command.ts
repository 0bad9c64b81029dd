import path from 'node:path';

import { Command } from 'commander';

import { demo, DEMO_FILES } from '../demo.js';
import { formatLoadResult } from '../report/load-summary.js';
import { ProgressBar } from '../report/progress-bar.js';
import { type GlobalOptions, stdio, terminalWidth, withDatabase } from './context.js';

export function demoCommand(global: () => GlobalOptions): Command {
  return new Command('demo')
    .description('load the shipped example supplier catalog into app.products for tenant "demo"')
    .option('--json', 'print the load result as JSON')
    .addHelpText(
      'after',
      `
Without DATABASE_URL this starts the embedded PostgreSQL (data in ./.pgferry), installs the
schema, creates app.products, adds tenant "demo", protects the table with row-level security
and loads examples/supplier-catalog.csv (10,000 rows, a few percent of them dirty).`,
    )
    .action(async (opts) => {
      const progress = new ProgressBar();
      const { result, origin } = await withDatabase(global(), async (db) => {
        stdio.err(`database: ${db.origin}`);
        const result = await demo(db.pool, (event) => {
          if (event.type === 'registered' && !opts.json) stdio.err(`load ${event.loadId} registered`);
          else if (event.type === 'stage-progress')
            progress.update('staging', event.bytesRead, event.totalBytes, event.rowsRead);
          else if (event.type === 'step') progress.done();
        });
        return { result, origin: db.origin };
      });
      progress.done();
      if (opts.json) {
        stdio.out(JSON.stringify(result, null, 2));
        return;
      }
      const shortest = (file: string) => {
        const relative = path.relative(process.cwd(), file);
        return relative.startsWith('..') ? file : relative;
      };
      const csv = shortest(DEMO_FILES.csv);
      const mapping = shortest(DEMO_FILES.mapping);
      stdio.out(formatLoadResult(result, { width: terminalWidth() }));
      const home = global().home ? ` --home ${global().home}` : '';
      const next: [string, string][] = [
        [`npx pgferry${home} loads`, 'recent loads'],
        [`npx pgferry${home} status ${result.loadId}`, 'steps, timings, counts'],
        [
          `npx pgferry${home} rejects ${result.loadId} -o rejects.csv`,
          'rejected lines with reasons, to fix and reload',
        ],
        [`npx pgferry${home} mapping show products`, 'the compiled SQL that ran'],
        [
          `npx pgferry${home} load ${csv} --tenant demo --mapping ${mapping}`,
          'the same file again: skipped, already loaded',
        ],
      ];
      const width = Math.max(...next.map(([command]) => command.length).filter((n) => n <= 50)) + 2;
      stdio.out(`\ndatabase: ${origin}\n\ntry next:`);
      for (const [command, what] of next) {
        stdio.out(
          command.length + 2 > width
            ? `  ${command}\n  ${' '.repeat(width)}${what}`
            : `  ${command.padEnd(width)}${what}`,
        );
      }
    });
}
