import { readFileSync } from 'node:fs';

import { Command, CommanderError } from 'commander';

import { describeError, EXIT, PgferryError } from '../errors.js';
import { printable } from '../report/text-table.js';
import { auditCommand } from './audit-command.js';
import { cancelCommand } from './cancel-command.js';
import { type GlobalOptions, InvalidOption, stdio, takeExitCode } from './context.js';
import { dashboardCommand } from './dashboard-command.js';
import { demoCommand } from './demo-command.js';
import { doctorCommand } from './doctor-command.js';
import { exportCommand } from './export-command.js';
import { inspectCommand } from './inspect-command.js';
import { loadCommand, validateCommand } from './load-command.js';
import { loadsCommand, statusCommand } from './loads-command.js';
import { mappingCommand } from './mapping-command.js';
import { migrateCommand } from './migrate-command.js';
import { planCommand } from './plan-command.js';
import { rejectsCommand } from './rejects-command.js';
import { resumeCommand } from './resume-command.js';
import { pruneCommand, rollbackCommand } from './rollback-command.js';
import { pauseCommands, syncCommand, syncsCommand } from './sync-command.js';
import { tenantCommand } from './tenant-command.js';
import { uninstallCommand } from './uninstall-command.js';
import { workerCommand } from './worker-command.js';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The whole CLI as a commander program (exported for tests and for the README's reference). */
export function buildProgram(): Command {
  const program = new Command('pgferry');
  const global = () => program.opts<GlobalOptions>();
  program
    .description('Database-native ETL for PostgreSQL: files in through COPY, SQL mappings, every row accounted for.')
    .version(version)
    .option(
      '--database-url <url>',
      'PostgreSQL to use (default: $DATABASE_URL, the PG* variables, else the embedded server)',
    )
    .option('--home <dir>', 'folder of the embedded PostgreSQL (default: $PGFERRY_HOME or ./.pgferry)')
    .option('--debug', 'print stack traces and database error context')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Quickstart:
  npx pgferry demo

Then with your own table and file:
  pgferry tenant add acme
  pgferry tenant protect app.products
  pgferry inspect catalog.csv
  pgferry validate catalog.csv --tenant acme --mapping products --max-rejects 0
  pgferry load catalog.csv --tenant acme --mapping products
  pgferry loads
  pgferry status 42
  pgferry rejects 42 -o rejects.csv
  pgferry mapping show products

Legacy databases, syncs and the worker:
  pgferry load -t acme -m products --from env:LEGACY_URL --table shop.items
  pgferry sync legacy_products        (declared in pgferry.yaml)
  pgferry worker                      (queued loads, scheduled syncs, plans)`,
    );
  for (const command of [
    demoCommand(global),
    inspectCommand(global),
    loadCommand(global),
    loadsCommand(global),
    statusCommand(global),
    rejectsCommand(global),
    tenantCommand(global),
    mappingCommand(global),
    validateCommand(global),
    resumeCommand(global),
    cancelCommand(global),
    syncCommand(global),
    syncsCommand(global),
    ...pauseCommands(global),
    workerCommand(global),
    planCommand(global),
    rollbackCommand(global),
    exportCommand(global),
    pruneCommand(global),
    auditCommand(global),
    dashboardCommand(global),
    uninstallCommand(global),
    migrateCommand(global),
    doctorCommand(global),
  ]) {
    program.addCommand(command);
  }
  program.commands.forEach(function exitOverride(command: Command) {
    command.exitOverride();
    command.commands.forEach(exitOverride);
  });
  program.exitOverride();
  return program;
}

/** Runs the CLI; returns the exit code. Only here are errors printed. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return takeExitCode();
  } catch (error) {
    const debug = program.opts<GlobalOptions>().debug ?? argv.includes('--debug');
    if (error instanceof CommanderError) {
      // Commander printed its own message; help and version are not errors.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof InvalidOption) {
      stdio.err(`pgferry: ${error.message}`);
      return EXIT.usage;
    }
    // Errors name files and quote their values: a hostile name must not drive the terminal.
    stdio.err(`pgferry: ${printable(describeError(error, debug))}`);
    return error instanceof PgferryError ? error.exitCode : EXIT.loadFailed;
  }
}
