import type { Command } from 'commander';

import { EXIT } from '../errors.js';
import { rowCounter } from '../report/row-counter.js';
import { formatNumber, printable, textTable } from '../report/text-table.js';
import { isEncryptedBackup } from '../tenant-backup/backup-encryption.js';
import type { BackupHeader, BackupTrailer } from '../tenant-backup/backup-manifest.js';
import { backupTenant } from '../tenant-backup/backup-tenant.js';
import { copyTenant } from '../tenant-backup/copy-tenant.js';
import { planPurge, purgeTenant } from '../tenant-backup/purge-tenant.js';
import { type RestoreResult, restoreTenant } from '../tenant-backup/restore-tenant.js';
import { rollbackRestore } from '../tenant-backup/rollback-restore.js';
import { verifyBackup } from '../tenant-backup/verify-backup.js';
import { type GlobalOptions, setExitCode, stdio, wholeNumber, withDatabase } from './context.js';
import { PASSPHRASE_ENV, readPassphrase } from './passphrase.js';

const PASSPHRASE_HELP = `the environment variable holding the passphrase (default: ${PASSPHRASE_ENV}); without it, asked in the terminal`;

/**
 * The commands of a tenant's whole life beyond add and protect: backup, verify, restore, copy,
 * rollback-restore and purge, added to `pgferry tenant`.
 */
export function addTenantLifeCommands(tenant: Command, global: () => GlobalOptions): void {
  tenant
    .command('backup')
    .description("write every row of a tenant in every protected table, and pgferry's records of it, to one file")
    .argument('<tenant>', 'the tenant to back up')
    .requiredOption('-o, --output <file>', 'the backup file to write')
    .option('--encrypt', 'encrypt with a passphrase (AES-256-GCM, key from scrypt)')
    .option('--passphrase-env <name>', PASSPHRASE_HELP)
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      `
The rows are read as the tenant, under row-level security, all tables in one snapshot (a
repeatable-read transaction): the backup is consistent while loads go on. Tables come parents
first (foreign-key order), each in COPY text format without its tenant column, after a
manifest (pgferry and server versions, the tables with their columns and types, the time and
snapshot) and before a trailer (row counts and a SHA-256 per table); with the tenant's
mapping versions and syncs. gzip-compressed; --encrypt encrypts it too, with a passphrase
that never goes on the command line. Streams: memory stays flat whatever the size. Written
under a temporary name and renamed when complete. Audited.

Examples:
  pgferry tenant backup acme -o acme-2026-12-01.pgferry
  PGFERRY_PASSPHRASE=… pgferry tenant backup acme -o acme.pgferry --encrypt`,
    )
    .action(async (slug: string, opts) => {
      const passphrase = opts.encrypt
        ? await readPassphrase({ envName: opts.passphraseEnv, confirm: true })
        : undefined;
      const progress = process.stderr.isTTY ? rowCounter('backing up') : undefined;
      const result = await withDatabase(global(), (db) =>
        backupTenant(db.pool, {
          tenant: slug,
          output: opts.output,
          passphrase,
          onProgress: (p) => progress?.update(p.rows, p.table),
        }),
      ).finally(() => progress?.done());
      stdio.out(
        opts.json
          ? JSON.stringify({ header: result.header, trailer: result.trailer }, null, 2)
          : `backup of ${slug} written to ${printable(opts.output)}${result.encrypted ? ' (encrypted)' : ''}: ` +
              `${formatNumber(result.rows)} rows\n${manifestTable(result.trailer)}`,
      );
    });

  tenant
    .command('verify')
    .description('check a backup file whole, without a database: decryption, checksums, manifest')
    .argument('<file>', 'the backup file')
    .option('--passphrase-env <name>', PASSPHRASE_HELP)
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      `
Exit codes: 0 the backup is whole, 2 it is refused (changed, cut short, wrong passphrase).

Examples:
  pgferry tenant verify acme.pgferry`,
    )
    .action(async (file: string, opts) => {
      const passphrase = await passphraseFor(file, opts.passphraseEnv);
      const result = await verifyBackup(file, { passphrase });
      stdio.out(
        opts.json
          ? JSON.stringify({ header: result.header, trailer: result.trailer }, null, 2)
          : `${printable(file)}: whole${result.encrypted ? ', encrypted' : ''}\n${describeManifest(result.header)}\n` +
              manifestTable(result.trailer),
      );
    });

  tenant
    .command('restore')
    .description("put a backup's rows back, in one transaction, into the database of DATABASE_URL")
    .argument('<file>', 'the backup file')
    .option('--as <tenant>', "restore under this tenant (added when missing) rather than the backup's")
    .option('--key <value>', "the tenant's key when the restore adds it (default: the backup's; with --as, the name)")
    .option('--replace', "replace the tenant's current rows (without it, a tenant that has rows is refused)")
    .option('--passphrase-env <name>', PASSPHRASE_HELP)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The target tables must exist, be protected and have the backup's columns with the same types
(the error lists every difference). The rows are written as the tenant, under row-level
security, parents first, in one transaction: a corrupt file, a table that does not fit or a
row a constraint refuses changes nothing. Sequences behind serial and identity columns move
past the restored ids. The tenant's mapping versions are registered, and its syncs added when
their names are free. Audited; undone with pgferry tenant rollback-restore ID.

Examples:
  pgferry tenant restore acme.pgferry
  pgferry tenant restore acme.pgferry --replace
  DATABASE_URL=postgres://…/staging pgferry tenant restore acme.pgferry --as acme_test`,
    )
    .action(async (file: string, opts) => {
      const passphrase = await passphraseFor(file, opts.passphraseEnv);
      const progress = process.stderr.isTTY ? rowCounter('restoring') : undefined;
      const result = await withDatabase(global(), (db) =>
        restoreTenant(db.pool, {
          input: file,
          as: opts.as,
          key: opts.key,
          replace: opts.replace,
          passphrase,
          onProgress: (p) => progress?.update(p.rows, p.table),
        }),
      ).finally(() => progress?.done());
      stdio.out(opts.json ? JSON.stringify(result, null, 2) : describeRestore(result));
    });

  tenant
    .command('copy')
    .description('copy a tenant into another database in one stream, without a file (backup and restore)')
    .argument('<tenant>', 'the tenant to copy')
    .requiredOption('--to <url>', 'connection string of the database to copy into')
    .option('--as <tenant>', 'the tenant there (added when missing; default: the same name)')
    .option('--key <value>', "the tenant's key there when the copy adds it")
    .option('--replace', "replace the tenant's rows there")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Read as the tenant in one snapshot here, written as the tenant in one transaction there, which
commits only once every row arrived and matched its checksum.

Examples:
  pgferry tenant copy acme --to postgres://app@db2.internal/app
  pgferry tenant copy acme --to "$STAGING_URL" --as acme_test --replace`,
    )
    .action(async (slug: string, opts) => {
      const progress = process.stderr.isTTY ? rowCounter('copying') : undefined;
      const result = await withDatabase(global(), (db) =>
        copyTenant(db.pool, {
          tenant: slug,
          to: opts.to,
          as: opts.as,
          key: opts.key,
          replace: opts.replace,
          onProgress: (p) => progress?.update(p.rows, p.table),
        }),
      ).finally(() => progress?.done());
      stdio.out(opts.json ? JSON.stringify(result.restore, null, 2) : describeRestore(result.restore));
    });

  tenant
    .command('rollback-restore')
    .description('undo a restore: delete the rows it wrote, bring back the rows it replaced')
    .argument('<restore>', 'the restore id (printed by restore and copy; in pgferry audit)', wholeNumber('restore id'))
    .option('--force', 'undo even when rows it wrote were changed or deleted since')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
In one transaction, as the tenant. Exit codes: 0 rolled back (or already), 1 refused because
rows it wrote were changed since (nothing changed), 2 no such restore.`,
    )
    .action(async (id: number, opts) => {
      const result = await withDatabase(global(), (db) => rollbackRestore(db.pool, id, { force: opts.force }));
      if (opts.json) stdio.out(JSON.stringify(result, null, 2));
      else if (result.outcome === 'already_rolled_back') stdio.out(`restore ${id} was already rolled back`);
      else if (result.outcome === 'rolled_back')
        stdio.out(
          `restore ${id} rolled back: ${formatNumber(result.deleted)} rows deleted, ` +
            `${formatNumber(result.restored)} replaced rows back`,
        );
      else
        stdio.out(
          `restore ${id} not rolled back: rows it wrote were changed since; nothing was changed\n` +
            textTable(
              ['table', 'restored', 'unchanged'],
              result.conflicts.map((c) => [c.table, c.restored, c.unchanged]),
            ) +
            `\nundo anyway: pgferry tenant rollback-restore --force ${id}`,
        );
      if (result.outcome === 'conflicts') setExitCode(EXIT.loadFailed);
    });

  tenant
    .command('purge')
    .description('delete a tenant whole: its rows in every protected table, schema, role and records')
    .argument('<tenant>', 'the tenant to purge')
    .option('--yes', 'purge; without it, list what would be deleted')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Deletes, in one transaction, the tenant's rows in every protected table (as the tenant,
children first), its policies, its staging schema, its role, and its loads, syncs, restores
and audit lines, leaving one audit line that it was purged (when, by whom, rows per table).
Other tenants are not touched. Refused while a load of the tenant runs.

Examples:
  pgferry tenant purge acme
  pgferry tenant purge acme --yes`,
    )
    .action(async (slug: string, opts) => {
      if (!opts.yes) {
        const plan = await withDatabase(global(), (db) => planPurge(db.pool, slug));
        stdio.out(
          opts.json
            ? JSON.stringify(plan, null, 2)
            : `purging ${slug} would delete:\n${textTable(
                ['what', 'object', 'detail'],
                plan.map((p) => [p.kind, p.object, p.detail]),
              )}\nto purge: pgferry tenant purge ${slug} --yes`,
        );
        return;
      }
      const result = await withDatabase(global(), (db) => purgeTenant(db.pool, slug));
      stdio.out(
        opts.json
          ? JSON.stringify(result, null, 2)
          : `tenant ${slug} purged (schema ${result.schema}, role ${result.role} dropped)\n` +
              textTable(
                ['table', 'rows deleted'],
                result.tables.map((t) => [t.table, t.rows]),
              ),
      );
    });

  tenant
    .command('remove')
    .description('remove a tenant that holds no rows: its schema, role and records (purge deletes rows too)')
    .argument('<tenant>', 'the tenant to remove')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
For a tenant added by mistake, or emptied already: removes, in one transaction, its policies,
its staging schema, its role and its loads, syncs and audit lines, leaving one audit line that
it was purged. A tenant with rows in a protected table is refused and nothing changes: see
what deleting them would delete with pgferry tenant purge TENANT.

Examples:
  pgferry tenant remove acme_test`,
    )
    .action(async (slug: string, opts) => {
      const result = await withDatabase(global(), (db) => purgeTenant(db.pool, slug, { onlyWithoutRows: true }));
      stdio.out(
        opts.json
          ? JSON.stringify(result, null, 2)
          : `tenant ${slug} removed (schema ${result.schema}, role ${result.role} dropped)`,
      );
    });
}

/** The passphrase, when the file is encrypted (asked for only then). */
async function passphraseFor(file: string, envName: string | undefined): Promise<string | undefined> {
  return (await isEncryptedBackup(file)) ? readPassphrase({ envName }) : undefined;
}

function manifestTable(trailer: BackupTrailer): string {
  return textTable(
    ['table', 'rows', 'sha256'],
    trailer.tables.map((t) => [t.table, t.rows, t.sha256.slice(0, 16)]),
  );
}

function describeManifest(h: BackupHeader): string {
  return printable(
    `tenant ${h.tenant.slug} (key ${h.tenant.key}), taken ${h.takenAt} by pgferry ${h.pgferry} ` +
      `from PostgreSQL ${h.server}, snapshot ${h.snapshot}; ` +
      `${h.catalog.mappings.length} mapping versions, ${h.catalog.syncs.length} syncs`,
  );
}

function describeRestore(r: RestoreResult): string {
  const lines = [
    printable(
      `restore ${r.restoreId}: ${formatNumber(r.rows)} rows of ${r.backupTenant} (taken ${r.takenAt}) ` +
        `restored as ${r.tenant}`,
    ),
    textTable(
      ['table', 'rows', 'replaced'],
      r.tables.map((t) => [t.table, t.rows, t.replaced]),
    ),
  ];
  if (r.catalog.mappings || r.catalog.syncs)
    lines.push(`mapping versions registered: ${r.catalog.mappings}, syncs added: ${r.catalog.syncs}`);
  for (const s of r.catalog.skipped) lines.push(`left out: ${printable(s)}`);
  lines.push(`undo with: pgferry tenant rollback-restore ${r.restoreId}`);
  return lines.join('\n');
}
