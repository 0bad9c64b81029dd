import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

import { recordAudit } from '../audit.js';
import { asUserError, PgferryError } from '../errors.js';
import { openExportOutput } from '../export/export-output.js';
import { EncryptBackup } from './backup-encryption.js';
import {
  BACKUP_FORMAT,
  BACKUP_MAGIC,
  type BackupHeader,
  type BackupTableSum,
  type BackupTrailer,
} from './backup-manifest.js';
import { countLines } from './backup-sections.js';
import { COPY_SETTINGS } from './copy-settings.js';

const { version: PGFERRY_VERSION } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { version: string };

export interface BackupOptions {
  /** The tenant whose rows are backed up; they are read as its role, under row-level security. */
  tenant: string;
  /**
   * A file name, or a stream (written to, not ended). A file is written under a temporary name
   * and renamed when complete: a failed backup leaves nothing behind.
   */
  output: string | Writable;
  /** Encrypt with this passphrase (AES-256-GCM, key from scrypt). (Default: not encrypted) */
  passphrase?: string;
  /** Compress with gzip. (Default: true) */
  gzip?: boolean;
  /** Called after each table with its sum; and with the running row count every chunk. */
  onProgress?: (progress: { table: string; rows: number; done: boolean }) => void;
}

export interface BackupResult {
  header: BackupHeader;
  trailer: BackupTrailer;
  rows: number;
  encrypted: boolean;
}

/**
 * backupTenant: every row the tenant has in every protected table, parents before children,
 * read as the tenant in one repeatable-read snapshot (consistent while loads go on), with what
 * pgferry holds for it (its mapping versions, its syncs and their state), as one file:
 * manifest and rows in COPY text format, gzip-compressed, optionally encrypted. Streams: a
 * chunk at a time, whatever the tenant's size. Audited.
 *
 * @example
 *   await backupTenant(pool, { tenant: 'acme', output: 'acme.pgferry' });
 *   await backupTenant(pool, { tenant: 'acme', output: 'acme.pgferry', passphrase: process.env.PGFERRY_PASSPHRASE });
 */
export async function backupTenant(pool: pg.Pool, options: BackupOptions): Promise<BackupResult> {
  const what = {
    ...(typeof options.output === 'string' ? { output: options.output } : {}),
    encrypted: options.passphrase !== undefined,
  };
  try {
    const output = await openExportOutput(options.output);
    let result: BackupResult;
    try {
      const stages: Transform[] = [];
      if (options.gzip !== false) stages.push(createGzip({ level: 3 }));
      if (options.passphrase !== undefined) stages.push(new EncryptBackup(options.passphrase));
      result = {
        ...(await streamBackup(pool, options, (plain) => pipeline([plain, ...stages, output.stream]))),
        encrypted: options.passphrase !== undefined,
      };
      await output.commit();
    } catch (error) {
      await output.abort();
      throw error;
    }
    await recordAudit(pool, {
      command: 'tenant backup',
      tenant: options.tenant,
      outcome: 'backed_up',
      details: { ...what, snapshot: result.header.snapshot, tables: result.trailer.tables },
    });
    return result;
  } catch (error) {
    const failure = asUserError(error);
    await recordAudit(pool, {
      command: 'tenant backup',
      tenant: options.tenant,
      outcome: 'failed',
      details: { ...what, error: failure instanceof Error ? failure.message : String(failure) },
    }).catch(() => {});
    throw failure;
  }
}

/**
 * Reads the tenant's backup in one transaction and hands its plain bytes, as a stream, to
 * `write`, which must consume them to their end. Shared with `tenant copy`, which restores
 * them as they come.
 */
export async function streamBackup(
  pool: pg.Pool,
  options: Pick<BackupOptions, 'tenant' | 'onProgress'>,
  write: (plain: Readable) => Promise<void>,
): Promise<BackupResult> {
  const client = await pool.connect();
  try {
    await client.query('begin isolation level repeatable read');
    // The snapshot is taken by the first query: the catalog and every table are read in it.
    const { rows: facts } = await client.query<{
      server: string;
      taken_at: Date;
      snapshot: string;
      catalog: BackupHeader['catalog'] & { tenant: BackupHeader['tenant'] };
    }>(
      `select current_setting('server_version') as server, now() as taken_at,
              pg_current_snapshot()::text as snapshot, ferry.tenant_catalog($1) as catalog`,
      [options.tenant],
    );
    await client.query(COPY_SETTINGS);
    const { rows: tables } = await client.query<{
      schema_name: string;
      table_name: string;
      display: string;
      columns: BackupHeader['tables'][number]['columns'];
      query: string;
    }>('select * from ferry.backup_tables($1) order by ordinal', [options.tenant]);
    if (tables.length === 0) {
      throw new PgferryError('there is no protected table to back up', {
        hint: 'protect the tables of your tenants first: pgferry tenant protect SCHEMA.TABLE',
      });
    }
    // Each table's SELECT installed as the tenant's function (export.sql), then nothing may write.
    const functions: string[] = [];
    for (const t of tables) {
      const { rows } = await client.query<{ function_name: string }>(
        'select distinct function_name from ferry.prepare_export($1, $2)',
        [options.tenant, t.query],
      );
      functions.push(rows[0].function_name);
    }
    await client.query('set transaction read only');

    const { catalog } = facts[0];
    const header: BackupHeader = {
      format: BACKUP_FORMAT,
      pgferry: PGFERRY_VERSION,
      server: facts[0].server,
      takenAt: facts[0].taken_at.toISOString(),
      snapshot: facts[0].snapshot,
      tenant: catalog.tenant,
      tables: tables.map((t) => ({ schema: t.schema_name, table: t.table_name, columns: t.columns })),
      catalog: { mappings: catalog.mappings, syncs: catalog.syncs },
    };
    const headerLine = Buffer.from(JSON.stringify(header), 'utf8');
    const sums: BackupTableSum[] = [];
    const onProgress = options.onProgress;

    async function* plainBytes(): AsyncGenerator<Buffer> {
      yield Buffer.from(BACKUP_MAGIC, 'latin1');
      yield Buffer.concat([headerLine, Buffer.from('\n')]);
      for (const [i, t] of tables.entries()) {
        const hash = createHash('sha256');
        let rows = 0;
        const copy = client.query(copyTo(`copy (select * from ${functions[i]}()) to stdout`));
        for await (const chunk of copy as AsyncIterable<Buffer>) {
          hash.update(chunk);
          rows += countLines(chunk);
          onProgress?.({ table: t.display, rows, done: false });
          yield chunk;
        }
        sums.push({ table: t.display, rows, sha256: hash.digest('hex') });
        onProgress?.({ table: t.display, rows, done: true });
        yield Buffer.from('\\.\n');
      }
      const trailer: BackupTrailer = {
        headerSha256: createHash('sha256').update(headerLine).digest('hex'),
        tables: sums,
      };
      yield Buffer.from(JSON.stringify(trailer) + '\n', 'utf8');
    }

    await write(Readable.from(plainBytes(), { objectMode: false }));
    // Read-only: the functions prepare_export() installed go with the transaction.
    await client.query('rollback');
    client.release();
    return {
      header,
      trailer: { headerSha256: createHash('sha256').update(headerLine).digest('hex'), tables: sums },
      rows: sums.reduce((n, s) => n + s.rows, 0),
      encrypted: false,
    };
  } catch (error) {
    // The connection may be mid-COPY: closed, never pooled again.
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}
