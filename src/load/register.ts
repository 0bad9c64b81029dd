import os from 'node:os';
import path from 'node:path';

import type pg from 'pg';

import { asUserError, isDatabaseError, PgferryError, SQLSTATE } from '../errors.js';
import type { Mapping } from '../mappings/mapping-file.js';
import type { SourceLayout } from '../sources/source-layout.js';
import type { LoadOptions } from './types.js';

/** A load's source, read and described, as ferry.register_load records it. */
export interface RegisteredSource {
  /** As ferry.loads.source records it: the file's absolute path, or the database's display name. */
  source: string;
  sha256: string | null;
  bytes: number | null;
  layout: SourceLayout;
  /** More for the load's options (the part of the file it reads). */
  extra?: Record<string, unknown>;
}

/** A load of the same file, for the same tenant and mapping version, succeeded or is on its way. */
export class FileAlreadyLoaded extends Error {
  constructor(
    readonly previousLoadId: number,
    /** Still on its way (queued or running), not yet succeeded. */
    readonly running: boolean,
  ) {
    super(`load ${previousLoadId} ${running ? 'is loading' : 'already loaded'} this file`);
  }
}

/**
 * Registers a load (ferry.register_load) with everything resume needs to run it again: how
 * its source is read and the options it was given. Returns the load's id. A file loaded, or
 * being loaded, already (not forced) is FileAlreadyLoaded; one whose load was interrupted is a
 * PgferryError saying to resume or cancel it.
 */
export async function registerLoad(
  pool: pg.Pool,
  options: LoadOptions,
  mappingId: number,
  registered: RegisteredSource,
): Promise<number> {
  const { layout } = registered;
  const registering = pool.query<{ id: number }>('select (ferry.register_load($1, $2, $3, $4, $5, $6, $7, $8)).id', [
    options.tenant,
    mappingId,
    registered.source,
    registered.sha256,
    registered.bytes,
    layout.format,
    JSON.stringify({
      delimiter: layout.delimiter,
      ...registered.extra,
      // jsonb cannot hold NUL: names keep it only in this process (staged names drop it anyway).
      source: { ...layout, columns: layout.columns.map((c) => c.replaceAll('\0', '')) },
      maxRejects: options.maxRejects,
      maxRejectRate: options.maxRejectRate,
      maxDuplicates: options.maxDuplicates,
      maxDuplicateRate: options.maxDuplicateRate,
      maxExpansion: options.maxExpansion,
      expansionCheckedAfter: options.expansionCheckedAfter,
      mappingTimeoutMs: options.mappingTimeoutMs,
      dryRun: options.dryRun ?? false,
      force: options.force ?? false,
      keepStaging: options.keepStaging ?? false,
      batchSize: options.batchSize,
      sync: options.sync,
    }),
    os.userInfo().username,
  ]);
  try {
    const { rows } = await registering;
    return Number(rows[0].id);
  } catch (error) {
    if (!isDatabaseError(error)) throw error;
    if (error.code === SQLSTATE.fileAlreadyLoaded) {
      throw new FileAlreadyLoaded(Number(error.detail), !error.message.includes('already loaded'));
    }
    if (error.code === SQLSTATE.fileLoadInterrupted) {
      throw new PgferryError(error.message, { hint: error.hint, cause: error });
    }
    throw error;
  }
}

/** The mapping's version in the catalog; `isNew`: registered now, for content not seen before. */
export interface RegisteredMapping {
  id: number;
  version: number;
  isNew: boolean;
}

/** An unknown tenant is an input error, reported before anything is registered; then the mapping's version. */
export async function checkTenantAndRegisterMapping(
  pool: pg.Pool,
  tenant: string,
  mapping: Mapping,
): Promise<RegisteredMapping> {
  await pool.query('select ferry.tenant($1)', [tenant]).catch((e) => {
    throw asUserError(e);
  });
  return registerMapping(pool, mapping);
}

/** The mapping's version in the catalog (ferry.register_mapping): a new one for content not seen before. */
async function registerMapping(pool: pg.Pool, mapping: Mapping): Promise<RegisteredMapping> {
  try {
    const { rows: known } = await pool.query<{ known: boolean }>(
      'select exists (select from ferry.mappings where name = $1 and sha256 = $2) as known',
      [mapping.name, mapping.sha256],
    );
    const { rows } = await pool.query<{ id: number; version: number }>(
      'select id, version from ferry.register_mapping($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
      [
        mapping.name,
        mapping.source,
        mapping.sha256,
        path.resolve(mapping.path),
        mapping.target,
        mapping.keyColumns,
        mapping.onConflict,
        mapping.duplicates,
        JSON.stringify(mapping.checks),
        mapping.selectSql,
        mapping.selectLine,
      ],
    );
    return { id: Number(rows[0].id), version: rows[0].version, isNew: !known[0].known };
  } catch (error) {
    throw asUserError(error, { file: mapping.path, line: mapping.headerLines.target });
  }
}

/**
 * After a dry run (validate, load --dry-run), whose load is gone: the mapping version it
 * registered goes too, unless a load uses it by now (ferry.forget_unused_mapping).
 */
export async function forgetDryRunMapping(pool: pg.Pool, mapping: RegisteredMapping): Promise<void> {
  if (!mapping.isNew) return;
  // Tidying up after the run, which may be failing already: its error is the one to see.
  await pool.query('select ferry.forget_unused_mapping($1)', [mapping.id]).catch(() => {});
}
