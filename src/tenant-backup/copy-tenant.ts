import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type pg from 'pg';

import { recordAudit } from '../audit.js';
import { openDatabase } from '../db/database.js';
import { PgferryError } from '../errors.js';
import { type BackupResult, streamBackup } from './backup-tenant.js';
import { type RestoreResult, restoreTenant } from './restore-tenant.js';

export interface CopyTenantOptions {
  /** The tenant whose rows are copied. */
  tenant: string;
  /** The database to copy into: a connection string (its pgferry schema is installed or upgraded). */
  to: string;
  /** Restore under this tenant there. (Default: the same name) */
  as?: string;
  /** The key of the tenant, when the copy adds it there. (Default: the source's key; with `as`, the new name) */
  key?: string;
  /** Replace the tenant's rows there. (Default: false: a tenant with rows there is refused) */
  replace?: boolean;
  onProgress?: (progress: { table: string; rows: number; done: boolean }) => void;
}

export interface CopyTenantResult {
  backup: BackupResult;
  restore: RestoreResult;
}

/**
 * copyTenant: a backup restored into another database as it is read, without a file: the
 * source read as the tenant in one snapshot, the target written in one transaction (which
 * commits only when every row arrived and matched its checksum).
 *
 * @example
 *   await copyTenant(pool, { tenant: 'acme', to: 'postgres://app@db2/app', as: 'acme' });
 */
export async function copyTenant(pool: pg.Pool, options: CopyTenantOptions): Promise<CopyTenantResult> {
  if (!options.to) throw new PgferryError('name the database to copy into (--to URL)');
  const target = await openDatabase({ url: options.to });
  try {
    const plain = new PassThrough({ highWaterMark: 1024 * 1024 });
    const restoring = restoreTenant(target.pool, {
      input: plain,
      as: options.as,
      key: options.key,
      replace: options.replace,
      onProgress: options.onProgress,
    });
    // A failed restore stops the backup (its writes would wait forever), and the other way round.
    restoring.catch((error: unknown) => plain.destroy(error as Error));
    const backingUp = streamBackup(pool, { tenant: options.tenant }, (bytes) => pipeline(bytes, plain));
    backingUp.catch((error: unknown) => plain.destroy(error as Error));
    const [backup, restore] = await Promise.all([backingUp, restoring]);
    // The restore is audited there; the copy, here.
    await recordAudit(pool, {
      command: 'tenant copy',
      tenant: options.tenant,
      outcome: 'copied',
      details: {
        to: withoutPassword(options.to),
        as: restore.tenant,
        restore: restore.restoreId,
        tables: backup.trailer.tables,
      },
    });
    return { backup, restore };
  } finally {
    await target.close();
  }
}

/** A connection string fit for the audit log: its password left out. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '';
    parsed.searchParams.delete('password');
    return parsed.toString();
  } catch {
    return '(not a URL)';
  }
}
