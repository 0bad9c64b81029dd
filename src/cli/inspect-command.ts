import { Command } from 'commander';

import { formatInspection } from '../report/inspection-text.js';
import { inspectFile } from '../sources/inspect-file.js';
import { type GlobalOptions, stdio, wholeNumber } from './context.js';
import { formatOption, maxExpansionOption, SOURCE_OPTION_HELP } from './source-options.js';

export function inspectCommand(_global: () => GlobalOptions): Command {
  return new Command('inspect')
    .description('show how a load would read a file, before writing its mapping: format, encoding, columns, first rows')
    .argument('<file>', 'data file: CSV/TSV, XLSX, JSON, NDJSON, XML or SQL dump, plain, gzipped or zipped')
    .addOption(formatOption())
    .option('--encoding <name>', SOURCE_OPTION_HELP.encoding)
    .option('-d, --delimiter <char>', SOURCE_OPTION_HELP.delimiter)
    .option('--sheet <name|n>', 'XLSX: the sheet to read, by name or 1-based position (default: the first)')
    .option('--header-row <n>', SOURCE_OPTION_HELP.headerRow, wholeNumber('--header-row'))
    .option('--records <path>', SOURCE_OPTION_HELP.records)
    .option('--table <name>', 'SQL dump: the table whose rows to read (needed when the dump holds several)')
    .option('--entry <name>', SOURCE_OPTION_HELP.entry)
    .addOption(maxExpansionOption())
    .option('-n, --rows <n>', 'rows of the file to show', wholeNumber('--rows'), 10)
    .option('--json', 'print what was found as JSON')
    .addHelpText(
      'after',
      `
Reads the file as \`pgferry load\` would, with the same options, and needs no database: it
writes nothing anywhere. The columns are listed as a mapping must write them
(\`s."Unit Price"\`), so they can be copied into a mapping's SELECT. For JSON it lists every
array that could hold the records, for --records; for XLSX every sheet, for --sheet.

Examples:
  pgferry inspect kunden.csv
  pgferry inspect kunden.csv --encoding windows-1252 --delimiter ';'
  pgferry inspect supplier.xlsx --sheet Prices
  pgferry inspect export.json --records data.items --json`,
    )
    .action(async (file: string, opts) => {
      const seen = await inspectFile(file, {
        format: opts.format,
        encoding: opts.encoding,
        delimiter: opts.delimiter,
        sheet: opts.sheet,
        headerRow: opts.headerRow,
        records: opts.records,
        table: opts.table,
        entry: opts.entry,
        maxExpansion: opts.maxExpansion,
        rows: opts.rows,
      });
      stdio.out(opts.json ? JSON.stringify(seen, null, 2) : formatInspection(seen));
    });
}
