import { Command, Option } from 'commander';

import { EXIT } from '../errors.js';
import { load } from '../load/load.js';
import { MAX_JOBS } from '../load/staging-jobs.js';
import type { LoadOptions, LoadResult } from '../load/types.js';
import { validate } from '../load/validate.js';
import { formatLoadResult } from '../report/load-summary.js';
import { ProgressBar } from '../report/progress-bar.js';
import { rejectTable } from '../report/reject-table.js';
import { formatNumber } from '../report/text-table.js';
import { writeRejectListCsv } from '../report/write-reject-list-csv.js';
import { asSourceError } from '../sources/source-syntax-error.js';
import { backupTenantToFolder } from '../tenant-backup/backup-to-folder.js';
import {
  type GlobalOptions,
  InvalidOption,
  setExitCode,
  stdio,
  terminalWidth,
  wholeNumber,
  withDatabase,
} from './context.js';
import { onCtrlC } from './ctrl-c.js';
import { showLoadEvents } from './load-events.js';
import { loadExitCode } from './load-exit-code.js';
import { page } from './pager.js';
import { formatOption, maxExpansionOption, SOURCE_OPTION_HELP } from './source-options.js';

export function loadCommand(global: () => GlobalOptions): Command {
  return fileCommand('load', 'load a data file for a tenant through a mapping: stage, transform, promote, verify')
    .option('--max-rejects <n>', 'promote nothing when more rows than this are rejected', wholeNumber('--max-rejects'))
    .addOption(
      new Option(
        '--max-reject-rate <percent>',
        'promote nothing when more than this percentage of rows is rejected',
      ).argParser(percent('--max-reject-rate')),
    )
    .option(
      '--max-duplicates <n>',
      'promote nothing when more rows than this are superseded by another line of the same key',
      wholeNumber('--max-duplicates'),
    )
    .addOption(
      new Option(
        '--max-duplicate-rate <percent>',
        'promote nothing when more than this percentage of rows is superseded by another line of the same key',
      ).argParser(percent('--max-duplicate-rate')),
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
      '--mapping-timeout <seconds>',
      "how long the mapping's SQL may run before the load fails (default: 1800, 30 minutes)",
      wholeNumber('--mapping-timeout'),
    )
    .option(
      '-j, --jobs <n>',
      `CSV: parallel COPY streams while staging, 1-${MAX_JOBS} (default: the number of CPU cores, at most ${MAX_JOBS}); other formats stage on one`,
      wholeNumber('--jobs'),
    )
    .option('--queue', 'register the load and return its id at once: a worker (pgferry worker) runs it')
    .option('--backup-to <dir>', 'back the tenant up into this folder first (pgferry tenant backup), then load')
    .option('--keep <n>', 'with --backup-to: keep the last N backups of the tenant there', wholeNumber('--keep'))
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The load's id is printed as soon as it is registered. With --queue, follow it with
\`pgferry status ID --follow\` (the file must be readable by the worker at the same path;
a database source must be given as --from env:NAME, set in the worker's environment).

Exit codes: 0 loaded (or skipped, already loaded; or queued), 1 the load failed, crossed
its reject or duplicate threshold or was cancelled (nothing promoted), 2 bad usage or input (missing file, unknown
tenant, broken mapping), 130 stopped by Ctrl-C: it says the \`pgferry resume ID\` that finishes the load.

What the file is — format, gzip or zip wrapper, text encoding, CSV delimiter, XLSX header
row — is detected from its content and shown in the summary ("read as: …"); the options
above override it.

Examples:
  pgferry load catalog.csv --tenant acme --mapping products
  pgferry load catalog.csv -t acme -m products --max-reject-rate 5 --dry-run
  pgferry load export.txt -t acme -m mappings/legacy.sql --delimiter '|' --json
  pgferry load supplier.xlsx -t acme -m products --sheet Prices
  pgferry load feed.json.gz -t acme -m products --records data.items
  pgferry load legacy.sql -t acme -m products --table products
  pgferry load latin1.csv -t acme -m products --encoding iso-8859-15
  pgferry load -t acme -m products --from env:LEGACY_URL --table shop.items
  pgferry load -t acme -m products --from postgres://app@legacy/shop --query 'select * from items where active'`,
    )
    .action((file: string | undefined, opts) =>
      runLoadCommand(global, file, opts, load, {
        maxRejects: opts.maxRejects,
        maxRejectRate: opts.maxRejectRate,
        maxDuplicates: opts.maxDuplicates,
        maxDuplicateRate: opts.maxDuplicateRate,
        dryRun: opts.dryRun,
        keepStaging: opts.keepStaging,
        force: opts.force,
        batchSize: opts.batchSize,
        mappingTimeoutMs: opts.mappingTimeout === undefined ? undefined : opts.mappingTimeout * 1000,
        jobs: opts.jobs,
        queue: opts.queue,
      }),
    );
}

export function validateCommand(global: () => GlobalOptions): Command {
  return (
    fileCommand(
      'validate',
      'check a file without loading it: every reject, and what a load would insert, update, leave unchanged',
    )
      .option('--max-rejects <n>', 'exit 1 when more rows than this are rejected', wholeNumber('--max-rejects'))
      .addOption(
        new Option(
          '--max-reject-rate <percent>',
          'exit 1 when more than this percentage of rows is rejected',
        ).argParser(percent('--max-reject-rate')),
      )
      .option('-o, --output <file>', 'write every reject to a CSV: where, line, rule, column, value, message, raw')
      .option('--json', 'print the result as JSON, every reject included')
      .addHelpText(
        'after',
        `
Runs every step of a load — staging, the mapping, every check, the promotion's plan and its
writes — then rolls it all back: the target, the catalog and the staging tables are left as
they were, with no load and no mapping version, even when the mapping fails (one line in
ferry.audit says it ran). A file loaded before is validated again.

Every reject is listed with where it is (line, record or cell) and why, paged on a terminal;
-o writes them all to a CSV (text that a spreadsheet would run as a formula gets a leading ').
Every step runs even past a threshold, so that every reject is found.

Exit codes: 0 the file would load, 1 a problem would make the load fail or the rejects cross
--max-rejects or --max-reject-rate, 2 bad usage or input (a mapping that does not compile).

Examples:
  pgferry validate catalog.csv --tenant acme --mapping products --max-rejects 0
  pgferry validate catalog.csv -t acme -m products -o rejects.csv
  pgferry validate catalog.csv -t acme -m products --max-reject-rate 1 --json`,
      )
      // A validation's load id is gone when it ends: not printed.
      .action((file: string | undefined, opts) =>
        runLoadCommand(
          global,
          file,
          opts,
          validate,
          { maxRejects: opts.maxRejects, maxRejectRate: opts.maxRejectRate },
          { validation: { output: opts.output } },
        ),
      )
  );
}

/** A command on a file loaded for a tenant through a mapping: load and validate. */
function fileCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .argument('[file]', 'data file: CSV/TSV, XLSX, JSON, NDJSON, XML or SQL dump, plain, gzipped or zipped')
    .requiredOption('-t, --tenant <tenant>', 'tenant whose rows these are')
    .requiredOption('-m, --mapping <mapping>', 'mapping name (mappings/<name>.sql) or path to a mapping file')
    .option('--mappings-dir <dir>', 'where mapping files live', 'mappings')
    .addOption(formatOption())
    .option('--encoding <name>', SOURCE_OPTION_HELP.encoding)
    .option('-d, --delimiter <char>', SOURCE_OPTION_HELP.delimiter)
    .option(
      '--sheet <name|n>',
      'XLSX: the sheet to load, by name or 1-based position (default: the first); repeat it to load several sheets, one load each',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--all-sheets', 'XLSX: load every sheet of the workbook, one load each')
    .option('--header-row <n>', SOURCE_OPTION_HELP.headerRow, wholeNumber('--header-row'))
    .option('--records <path>', SOURCE_OPTION_HELP.records)
    .option(
      '--from <url>',
      'instead of a file, a source database: postgres://… or mysql://…, or env:NAME for a URL in an environment variable',
    )
    .option('--query <select>', '--from: the SELECT to read')
    .option(
      '--table <name>',
      'SQL dump: the table whose rows to load (needed when the dump holds several); --from: the table to read',
    )
    .option('--entry <name>', SOURCE_OPTION_HELP.entry)
    .addOption(maxExpansionOption());
}

/** A percentage option (`5` or `5%`) as a fraction. */
function percent(name: string) {
  return (v: string): number => {
    const n = Number(v.replace(/%$/, ''));
    if (!Number.isFinite(n) || n < 0 || n > 100) throw new InvalidOption(`${name} must be 0-100, not "${v}"`);
    return n / 100;
  };
}

/** The file options of load and validate, as LoadOptions. */
function sourceOptions(opts: FileCommandOptions, sheet: string | undefined): Partial<LoadOptions> {
  return {
    from: opts.from,
    query: opts.query,
    format: opts.format,
    encoding: opts.encoding,
    delimiter: opts.delimiter,
    sheet,
    headerRow: opts.headerRow,
    records: opts.records,
    table: opts.table,
    entry: opts.entry,
    maxExpansion: opts.maxExpansion,
  };
}

interface FileCommandOptions {
  tenant: string;
  mapping: string;
  mappingsDir: string;
  format?: string;
  encoding?: string;
  delimiter?: string;
  sheet?: string[];
  allSheets?: boolean;
  headerRow?: number;
  records?: string;
  table?: string;
  entry?: string;
  maxExpansion?: number;
  from?: string;
  query?: string;
  json?: boolean;
  /** load only: back the tenant up into this folder first. */
  backupTo?: string;
  keep?: number;
}

/** The sheets to load, one load each: those named (a number is a position), or every one. */
async function sheetsToLoad(file: string, opts: FileCommandOptions): Promise<(string | undefined)[]> {
  if (opts.allSheets) {
    if (opts.sheet) throw new InvalidOption('--all-sheets and --sheet: choose one');
    const { listXlsxSheets } = await import('../sources/file/xlsx/xlsx-reader.js');
    return listXlsxSheets(() => file).catch((error) => {
      throw asSourceError(error, file);
    });
  }
  return opts.sheet ?? [undefined];
}

/**
 * Runs the load or validation (one per sheet asked for), with progress on stderr, and prints
 * each result; a failed or cancelled load exits 1.
 */
async function runLoadCommand(
  global: () => GlobalOptions,
  file: string | undefined,
  opts: FileCommandOptions,
  run: typeof load | typeof validate,
  options: Partial<LoadOptions>,
  { validation }: { validation?: { output?: string } } = {},
): Promise<void> {
  if ((file === undefined) === (opts.from === undefined)) {
    throw new InvalidOption('give a file, or a source database with --from (one of them)');
  }
  if (opts.query !== undefined && opts.from === undefined) throw new InvalidOption('--query goes with --from');
  if (opts.keep !== undefined && opts.backupTo === undefined) throw new InvalidOption('--keep goes with --backup-to');
  const sheets = file === undefined ? [undefined] : await sheetsToLoad(file, opts);
  if (validation?.output && sheets.length > 1)
    throw new InvalidOption('-o writes one file: validate one sheet at a time');
  const results: LoadResult[] = [];
  await withDatabase(global(), async (db) => {
    if (opts.backupTo !== undefined) {
      const backup = await backupTenantToFolder(db.pool, { tenant: opts.tenant, dir: opts.backupTo, keep: opts.keep });
      stdio.err(
        `backup of ${opts.tenant}: ${backup.file} (${formatNumber(backup.rows)} rows)` +
          (backup.removed.length ? `; removed ${backup.removed.length} older` : ''),
      );
    }
    for (const sheet of sheets) {
      const progress = new ProgressBar();
      const show = showLoadEvents(progress, { json: opts.json || validation !== undefined });
      const interrupt = onCtrlC({ validation: validation !== undefined, beforeMessage: () => progress.done() });
      let result: LoadResult;
      try {
        result = await run(db.pool, {
          file,
          tenant: opts.tenant,
          mapping: opts.mapping,
          mappingsDir: opts.mappingsDir,
          ...sourceOptions(opts, sheet),
          ...options,
          onEvent: (event) => {
            interrupt.watch(event);
            show(event);
          },
        });
      } finally {
        interrupt.stop();
        // Also when the load throws: its error starts on a clean line.
        progress.done();
      }
      results.push(result);
      if (validation) await showValidation(result, opts, validation.output, results.length > 1);
      else if (!opts.json) {
        if (results.length > 1) stdio.out('');
        stdio.out(formatLoadResult(result, { width: terminalWidth() }));
      }
      if (loadExitCode(result.status) !== EXIT.ok) setExitCode(loadExitCode(result.status));
    }
  });
  if (opts.json) stdio.out(JSON.stringify(results.length === 1 ? results[0] : results, null, 2));
}

/**
 * A validation's result for people: the summary, then every reject (paged on a terminal), or,
 * with -o, where they were written.
 */
async function showValidation(
  result: LoadResult,
  opts: FileCommandOptions,
  output: string | undefined,
  another: boolean,
): Promise<void> {
  const rejects = result.rejects ?? [];
  if (output) await writeRejectListCsv(rejects, output);
  if (opts.json) return;
  const text = [formatLoadResult(result, { validation: true, width: terminalWidth() })];
  // Lines superseded by a later one of the same key are listed too, but are no rejects.
  const duplicates = rejects.filter((r) => r.rule === 'duplicate').length;
  const counted = `${plural(rejects.length - duplicates, 'reject')}${duplicates > 0 ? ` and ${plural(duplicates, 'duplicate line')}` : ''}`;
  if (output) text.push('', `${counted} written to ${output}`);
  else if (rejects.length > 0) {
    text.push('', `every one of the ${counted}, in file order:`, rejectTable(rejects, { messageChars: 500 }));
  }
  if (another) stdio.out('');
  await page(text.join('\n'));
}

/** `1 reject`, `2 rejects`. */
function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
