import { Command } from 'commander';

import { startDashboard } from '../dashboard/dashboard-server.js';
import { printable } from '../report/text-table.js';
import { type GlobalOptions, stdio, wholeNumber, withDatabase } from './context.js';

export function dashboardCommand(global: () => GlobalOptions): Command {
  return new Command('dashboard')
    .description('serve a web page of loads, rejects, syncs and plans, and a JSON API under /api/, until stopped')
    .option('-p, --port <n>', 'the port to listen on (0: a free one)', wholeNumber('--port'), 5710)
    .option(
      '--host <address>',
      'the address to listen on; beyond loopback only with PGFERRY_DASHBOARD_TOKEN',
      '127.0.0.1',
    )
    .option('-t, --tenant <tenant>', 'show only this tenant: every page and answer (for showing a supplier)')
    .option('--allow-actions', 'allow cancelling and rolling back a load from the page or the API (read-only without)')
    .addHelpText(
      'after',
      `
Pages: / (recent loads) and /loads/ID (a load: its counts, timings, reject reasons, rejects
and compiled SQL). API: /api/loads?tenant=&status=, /api/loads/ID, /api/loads/ID/rejects?page=&q=,
/api/loads/ID/rejects.csv, /api/syncs, /api/plans. With PGFERRY_DASHBOARD_TOKEN set, every
request needs it: "Authorization: Bearer TOKEN", or open /?token=TOKEN once (a cookie keeps it).
See docs/dashboard.md.

Examples:
  pgferry dashboard
  pgferry dashboard --tenant acme --port 5711
  PGFERRY_DASHBOARD_TOKEN=$(openssl rand -hex 24) pgferry dashboard --host 0.0.0.0`,
    )
    .action(async (opts: { port: number; host: string; tenant?: string; allowActions?: boolean }) => {
      await withDatabase(global(), async (db) => {
        const dashboard = await startDashboard(db.pool, {
          port: opts.port,
          host: opts.host,
          tenant: opts.tenant,
          allowActions: opts.allowActions,
          token: process.env.PGFERRY_DASHBOARD_TOKEN,
          onError: (error) => stdio.err(`${new Date().toISOString()} ${printable(error.message)}`),
        });
        const limits = [
          opts.tenant && `tenant ${opts.tenant} only`,
          opts.allowActions ? 'actions allowed' : 'read-only',
        ];
        stdio.out(`dashboard at ${dashboard.url} (${limits.filter(Boolean).join(', ')}); Ctrl-C stops it`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await dashboard.close();
        stdio.out('dashboard stopped');
      });
    });
}
