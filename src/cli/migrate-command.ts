import { Command } from 'commander';

import { recordAudit } from '../audit.js';
import { openDatabase } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { type GlobalOptions, stdio } from './context.js';

export function migrateCommand(global: () => GlobalOptions): Command {
  return new Command('migrate')
    .description('install or upgrade the ferry schema (every command also does this on first use)')
    .action(async () => {
      const g = global();
      const db = await openDatabase({ url: g.databaseUrl, embeddedDir: g.home, migrate: false });
      try {
        const client = await db.pool.connect();
        try {
          const { migrations, functions } = await migrate(client);
          if (migrations.length || functions.length)
            await recordAudit(client, { command: 'migrate', outcome: 'applied', details: { migrations, functions } });
          if (migrations.length) stdio.out(`migrations applied: ${migrations.join(', ')}`);
          if (functions.length) stdio.out(`functions (re)applied: ${functions.join(', ')}`);
          if (!migrations.length && !functions.length) stdio.out('the ferry schema is up to date');
        } finally {
          client.release();
        }
      } finally {
        await db.close();
      }
    });
}
