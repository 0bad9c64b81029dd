import { Command, Option } from 'commander';

import { EXIT } from '../errors.js';
import { load, type LoadOptions, MAX_JOBS } from '../load.js';
import { formatLoadResult } from '../report/load-summary.js';
import { ProgressBar } from '../report/progress-bar.js';
import { type GlobalOptions, InvalidOption, setExitCode, stdio, wholeNumber, withDatabase } from './context.js';
import { showLoadEvents } from './load-events.js';

export function loadCommand(global: () => GlobalOptions): Command {
  return fileCommand('load', 'load a CSV file for a tenant through a mapping: stage, transform, promote, verify')
    .option('--max-rejects <n>', 'promote nothing when more rows than this are rejected', wholeNumber('--max-rejects'))
    .addOption(
      new Option(
        '--max-reject-rate <percent>',
        'promote nothing when more than this percentage of rows is rejected',
      ).argParser((v) => {
        const n = Number(v.replace(/%$/, ''));
        if (!Number.isFinite(n) || n < 0 || n > 100)
          throw new InvalidOption(`--max-reject-rate must be 0-100, not "${v}"`);
        return n / 100;
      }),
    )
    .option('--dry-run', 'run every step, report what would happen, roll back and leave no trace')
    .option('--keep-staging', 'keep the staging and work tables after the load')
    .option('--force', 'load the file even if it was loaded already for this tenant and mapping')
    .option(
      '--batch-size <rows>',
      'rows per promotion batch (each under a savepoint)',
      wholeNumber('--batch-size'),
      10000,
    )
    .option(
      '-j, --jobs <n>',
      `parallel COPY streams while staging, 1-${MAX_JOBS} (default: the number of CPU cores, at most ${MAX_JOBS})`,
      wholeNumber('--jobs'),
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The load's id is printed as soon as it is registered. Exit codes: 0 loaded (or skipped,
already loaded), 1 the load failed or crossed its reject threshold (nothing promoted),
2 bad usage or input (missing file, unknown tenant, broken mapping).

Examples:
  pgferry load catalog.csv --tenant acme --mapping products
  pgferry load catalog.csv -t acme -m products --max-reject-rate 5 --dry-run
  pgferry load export.txt -t acme -m mappings/legacy.sql --delimiter '|' --json`,
    )
    .action((file: string, opts) =>
      runLoadCommand(global, file, opts, {
        maxRejects: opts.maxRejects,
        maxRejectRate: opts.maxRejectRate,
        dryRun: opts.dryRun,
        keepStaging: opts.keepStaging,
        force: opts.force,
        batchSize: opts.batchSize,
        jobs: opts.jobs,
      }),
    );
}

export function validateCommand(global: () => GlobalOptions): Command {
  return (
    fileCommand(
      'validate',
      'check a file without loading it: every reject, and what a load would insert, update, leave unchanged',
    )
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        `
Runs every step of a load — staging, the mapping, every check, the promotion's plan and its
writes — then rolls it all back: the target, the catalog and the staging tables are left as
they were (one line in ferry.audit says it ran). A file loaded before is validated again.
The rejects are printed with their reasons; \`--json\` lists the counts. Exit codes: 0 the
file would load, 1 a problem would make the load fail, 2 bad usage or input.

Examples:
  pgferry validate catalog.csv --tenant acme --mapping products
  pgferry validate catalog.csv -t acme -m products --json`,
      )
      // A validation's load id is gone when it ends: not printed.
      .action((file: string, opts) =>
        runLoadCommand(global, file, opts, { dryRun: true, force: true }, { showId: false }),
      )
  );
}

/** A command on a file loaded for a tenant through a mapping: load and validate. */
function fileCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .argument('<file>', 'CSV file with a header line (UTF-8, delimiter , ; TAB or |)')
    .requiredOption('-t, --tenant <tenant>', 'tenant whose rows these are')
    .requiredOption('-m, --mapping <mapping>', 'mapping name (mappings/<name>.sql) or path to a mapping file')
    .option('--mappings-dir <dir>', 'where mapping files live', 'mappings')
    .option('-d, --delimiter <char>', 'field delimiter (default: sniffed from the file)');
}

/** Runs the load, with progress on stderr, and prints its result; a failed load exits 1. */
async function runLoadCommand(
  global: () => GlobalOptions,
  file: string,
  opts: { tenant: string; mapping: string; mappingsDir: string; delimiter?: string; json?: boolean },
  options: Partial<LoadOptions>,
  { showId = true } = {},
): Promise<void> {
  const progress = new ProgressBar();
  const result = await withDatabase(global(), (db) =>
    load(db.pool, {
      file,
      tenant: opts.tenant,
      mapping: opts.mapping,
      mappingsDir: opts.mappingsDir,
      delimiter: opts.delimiter,
      ...options,
      onEvent: showLoadEvents(progress, { json: opts.json || !showId }),
    }),
  );
  progress.done();
  stdio.out(opts.json ? JSON.stringify(result, null, 2) : formatLoadResult(result));
  if (result.status === 'failed') setExitCode(EXIT.loadFailed);
}
