import { Command } from 'commander';

import { migrateDatabase } from '../db/migrate-database.js';
import { type GlobalOptions, stdio, withDatabase } from './context.js';

export function migrateCommand(global: () => GlobalOptions): Command {
  return new Command('migrate')
    .description('install or upgrade the ferry schema (every command also does this on first use)')
    .action(async () => {
      // Opened without migrating, so that what this command applies can be told.
      const { migrations, functions } = await withDatabase({ ...global(), migrate: false }, (db) =>
        migrateDatabase(db.pool),
      );
      if (migrations.length) stdio.out(`migrations applied: ${migrations.join(', ')}`);
      if (functions.length) stdio.out(`functions (re)applied: ${functions.join(', ')}`);
      if (!migrations.length && !functions.length) stdio.out('the ferry schema is up to date');
    });
}
