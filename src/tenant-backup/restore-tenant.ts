import { open } from 'node:fs/promises';
import os from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

import { recordAudit } from '../audit.js';
import { asUserError, PgferryError } from '../errors.js';
import type { BackupHeader } from './backup-manifest.js';
import { countLines } from './backup-sections.js';
import { COPY_SETTINGS } from './copy-settings.js';
import { backupParts } from './open-backup-bytes.js';
import { asPrintableError } from './printable-error.js';
import { restoredMappings } from './restored-mappings.js';

export interface RestoreOptions {
  /** A backup file, or a stream of one (plain, gzip or encrypted: told from its first bytes). */
  input: string | Readable;
  /** Restore under this tenant, added when missing. (Default: the backup's tenant) */
  as?: string;
  /** The key of the tenant, when the restore adds it. (Default: the backup's key; with `as`, the new name) */
  key?: string;
  /** Replace the tenant's current rows. Without it, a tenant that has rows is refused. (Default: false) */
  replace?: boolean;
  /** The passphrase of an encrypted backup. */
  passphrase?: string;
  /** Called with the running row count of each table, and once more when the table is done. */
  onProgress?: (progress: { table: string; rows: number; done: boolean }) => void;
}

export interface RestoredTable {
  /** `schema.table`, as SQL quotes it. */
  table: string;
  rows: number;
  /** Rows of the tenant that --replace deleted first. */
  replaced: number;
}

export interface RestoreResult {
  /** The restore's id: `pgferry tenant rollback-restore ID` undoes it. */
  restoreId: number;
  tenant: string;
  backupTenant: string;
  takenAt: string;
  tables: RestoredTable[];
  rows: number;
  /** What of the backup's catalog was restored: mapping versions registered, syncs added, and what was left out. */
  catalog: { mappings: number; syncs: number; skipped: string[] };
}

/**
 * restoreTenant: a backup's rows back into the protected tables of this database, in one
 * transaction: a backup that turns out corrupt, a table that does not fit (every difference
 * listed), a row a constraint refuses — any failure changes nothing. The tenant is added when
 * missing; its rows are written as the tenant (row-level security checks each one), parents
 * first. Audited; `rollbackRestore()` undoes it.
 *
 * @example
 *   await restoreTenant(pool, { input: 'acme.pgferry' });
 *   await restoreTenant(pool, { input: 'acme.pgferry', as: 'acme_test', replace: true });
 */
export async function restoreTenant(pool: pg.Pool, options: RestoreOptions): Promise<RestoreResult> {
  const source = typeof options.input === 'string' ? options.input : 'stream';
  let tenant = options.as;
  try {
    const input = typeof options.input === 'string' ? await openFile(options.input) : options.input;
    try {
      return await restoreParts(pool, options, input, source, (slug) => (tenant = slug));
    } finally {
      input.destroy();
    }
  } catch (error) {
    const failure = asPrintableError(asUserError(error));
    await recordAudit(pool, {
      command: 'tenant restore',
      tenant,
      outcome: 'failed',
      details: { source, error: failure instanceof Error ? failure.message : String(failure) },
    }).catch(() => {});
    throw failure;
  }
}

async function openFile(file: string): Promise<Readable> {
  try {
    const handle = await open(file, 'r');
    return handle.createReadStream({ highWaterMark: 256 * 1024 });
  } catch (error) {
    throw new PgferryError(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** One table's rows on their way: the COPY into the restore's table for it. */
interface TableCopy {
  stage: string;
  stream: Writable;
  done: Promise<void>;
  rows: number;
}

async function restoreParts(
  pool: pg.Pool,
  options: RestoreOptions,
  input: Readable,
  source: string,
  named: (tenant: string) => void,
): Promise<RestoreResult> {
  const client = await pool.connect();
  let header: BackupHeader | undefined;
  let restoreId = 0;
  let copy: TableCopy | undefined;
  const tables: { schema: string; table: string; rows: number }[] = [];
  try {
    await client.query('begin');
    await client.query(COPY_SETTINGS);
    for await (const part of backupParts(input, options.passphrase)) {
      if (part.kind === 'header') {
        header = part.header;
        const tenant = options.as ?? header.tenant.slug;
        named(tenant);
        const key = options.key ?? (tenant === header.tenant.slug ? header.tenant.key : null);
        const { rows } = await client.query<{ id: number }>(
          'select id from ferry.begin_restore($1, $2, $3, $4, $5, $6, $7)',
          [
            tenant,
            key,
            options.replace ?? false,
            source,
            header.tenant.slug,
            JSON.stringify(header.tables),
            os.userInfo().username,
          ],
        );
        restoreId = Number(rows[0].id);
      } else if (part.kind === 'rows') {
        copy ??= await startCopy(client, restoreId, header!, part.table);
        if (!copy.stream.write(part.bytes)) await drained(copy);
        copy.rows += countLines(part.bytes);
        options.onProgress?.({ table: tableName(header!, part.table), rows: copy.rows, done: false });
      } else if (part.kind === 'table end') {
        copy ??= await startCopy(client, restoreId, header!, part.table);
        copy.stream.end();
        await copy.done;
        copy = undefined;
        const t = header!.tables[part.table];
        const { rows } = await client.query<{ rows: number }>(
          'select ferry.restore_table($1, $2, $3, $4, $5) as rows',
          [restoreId, part.table + 1, t.schema, t.table, t.columns.map((c) => c.name)],
        );
        const written = Number(rows[0].rows);
        if (written !== part.sum.rows) {
          throw new PgferryError(`${part.sum.table}: ${written} rows written of the backup's ${part.sum.rows}`);
        }
        tables.push({ schema: t.schema, table: t.table, rows: written });
        options.onProgress?.({ table: part.sum.table, rows: written, done: true });
      }
    }
    // Every check passed (backupParts ends only when the trailer matched and the file ended).
    const trusted = restoredMappings(header!.catalog);
    const { rows } = await client.query<{ result: { tables: RestoredTable[]; catalog: RestoreResult['catalog'] } }>(
      'select ferry.finish_restore($1, $2, $3) as result',
      [restoreId, JSON.stringify(tables), JSON.stringify(trusted.catalog)],
    );
    await client.query('commit');
    client.release();
    const { result } = rows[0];
    return {
      restoreId,
      tenant: options.as ?? header!.tenant.slug,
      backupTenant: header!.tenant.slug,
      takenAt: header!.takenAt,
      tables: result.tables.map((t) => ({ table: t.table, rows: Number(t.rows), replaced: Number(t.replaced) })),
      rows: tables.reduce((n, t) => n + t.rows, 0),
      catalog: { ...result.catalog, skipped: [...trusted.skipped, ...result.catalog.skipped] },
    };
  } catch (error) {
    copy?.stream.destroy();
    // A failed COPY leaves the connection unusable for a while: closed, never pooled again.
    await client.query('rollback').catch(() => {});
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}

async function startCopy(
  client: pg.PoolClient,
  restoreId: number,
  header: BackupHeader,
  index: number,
): Promise<TableCopy> {
  const t = header.tables[index];
  const { rows } = await client.query<{ stage: string }>(
    'select ferry.prepare_restore_table($1, $2, $3, $4, $5) as stage',
    [restoreId, index + 1, t.schema, t.table, t.columns.map((c) => c.name)],
  );
  const { stage } = rows[0];
  const columns = t.columns.map((c) => client.escapeIdentifier(c.name)).join(', ');
  const stream = client.query(copyFrom(`copy ${stage} (${columns}) from stdin`));
  const done = finished(stream);
  // Awaited when the table ends, or dropped with the connection when something else failed.
  done.catch(() => {});
  return { stage, stream, done, rows: 0 };
}

/** Waits until the COPY takes more, or fails. */
function drained(copy: TableCopy): Promise<void> {
  return Promise.race([new Promise<void>((resolve) => copy.stream.once('drain', resolve)), copy.done]);
}

function tableName(header: BackupHeader, index: number): string {
  const t = header.tables[index];
  return `${t.schema}.${t.table}`;
}
