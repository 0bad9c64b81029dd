import { mkdir, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';

import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { type BackupResult, backupTenant } from './backup-tenant.js';

export interface FolderBackupOptions {
  tenant: string;
  /** The folder of the tenant's backups (made when missing). */
  dir: string;
  /** Keep the last N backups of the tenant in the folder, removing older ones. (Default: all) */
  keep?: number;
  /** Encrypt with this passphrase. */
  passphrase?: string;
}

export interface FolderBackupResult extends BackupResult {
  /** The backup written: DIR/TENANT-YYYYMMDDTHHMMSSmmmZ.pgferry. */
  file: string;
  /** Older backups of the tenant removed to keep the last `keep`. */
  removed: string[];
}

/**
 * backupTenantToFolder: a backup of the tenant into a folder of backups, named by tenant and
 * time, keeping only the last `keep` of that tenant's there: what `load --backup-to DIR
 * --keep N` takes before a big load.
 *
 * @example
 *   const { file } = await backupTenantToFolder(pool, { tenant: 'acme', dir: 'backups', keep: 7 });
 */
export async function backupTenantToFolder(pool: pg.Pool, options: FolderBackupOptions): Promise<FolderBackupResult> {
  if (options.keep !== undefined && !(Number.isInteger(options.keep) && options.keep >= 1)) {
    throw new PgferryError(`keep: a whole number of backups, at least 1 (not ${options.keep})`);
  }
  // The name becomes part of a file's: a tenant's name is a slug, nothing else is one.
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(options.tenant))
    throw new PgferryError(`invalid tenant name ${JSON.stringify(options.tenant)}`);
  await mkdir(options.dir, { recursive: true }).catch((error: unknown) => {
    throw new PgferryError(`cannot make the folder ${options.dir}: ${(error as Error).message}`, { cause: error });
  });
  const stamp = new Date().toISOString().replace(/[-:.]/g, '');
  const file = path.join(options.dir, `${options.tenant}-${stamp}.pgferry`);
  const result = await backupTenant(pool, { tenant: options.tenant, output: file, passphrase: options.passphrase });
  const removed: string[] = [];
  if (options.keep !== undefined) {
    const own = new RegExp(`^${options.tenant}-\\d{8}T\\d{9}Z\\.pgferry$`);
    const backups = (await readdir(options.dir)).filter((name) => own.test(name)).sort();
    for (const name of backups.slice(0, Math.max(0, backups.length - options.keep))) {
      await unlink(path.join(options.dir, name));
      removed.push(path.join(options.dir, name));
    }
  }
  return { ...result, file, removed };
}
