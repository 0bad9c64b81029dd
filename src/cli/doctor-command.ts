import { Command } from 'commander';

import { doctor } from '../doctor/doctor.js';
import { printable } from '../report/text-table.js';
import { type GlobalOptions, setExitCode, stdio, withDatabase } from './context.js';

export function doctorCommand(global: () => GlobalOptions): Command {
  return new Command('doctor')
    .description('check what the server and the current role lack for pgferry, with the fix for each')
    .option('--json', 'print the findings as JSON')
    .addHelpText(
      'after',
      `
Checks the server version, extensions, TLS, connection room and timeouts, and whether the role
can create tenant roles, create schemas and temporary tables in the database, upgrade the
ferry schema, and use the protected tables and tenant roles. It changes nothing (the schema is
not installed; a role it creates to try is rolled back). Exits 1 when a check fails.

Examples:
  pgferry doctor
  DATABASE_URL='postgres://app@db.example.com/app?sslmode=verify-full' pgferry doctor --json`,
    )
    .action(async (opts) => {
      const findings = await withDatabase({ ...global(), migrate: false, requireSession: false }, (db) =>
        doctor(db.pool),
      );
      if (findings.some((f) => f.status === 'fail')) setExitCode(1);
      if (opts.json) {
        stdio.out(JSON.stringify(findings, null, 2));
        return;
      }
      const width = Math.max(...findings.map((f) => f.check.length));
      for (const f of findings) {
        const status = f.status === 'ok' ? 'ok  ' : f.status.toUpperCase();
        stdio.out(`${status}  ${f.check.padEnd(width)}  ${printable(f.message)}`);
        if (f.fix) stdio.out(`${' '.repeat(width + 8)}fix: ${printable(f.fix)}`);
      }
      const failed = findings.filter((f) => f.status === 'fail').length;
      const warned = findings.filter((f) => f.status === 'warn').length;
      stdio.out(
        failed || warned
          ? `${failed} check(s) failed, ${warned} warning(s)`
          : 'all checks passed: this role can run pgferry on this server',
      );
    });
}
