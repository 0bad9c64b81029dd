// The public shapes of a load: its options, its events, its result. src/index.ts exports them.
import type pg from 'pg';

import type { RejectRow } from '../catalog.js';
import type { SourceSession } from '../sources/database/source-session.js';
import type { SourceOptions } from '../sources/file/read-source-layout.js';
import type { SourceLayout } from '../sources/source-layout.js';

/**
 * Options of one load; every one has a sensible default but file, tenant and mapping. What
 * the file is (format, encoding, wrapper, sheet, records, table) is detected unless given.
 */
export interface LoadOptions extends SourceOptions {
  /** The data file; or, instead, `from`. */
  file?: string;
  /**
   * A source database instead of a file: a `postgres://` or `mysql://` URL, or `env:NAME` for
   * one held in an environment variable (recorded as `env:NAME`; a URL's password is never
   * recorded). With `table` (the source's table) or `query`.
   */
  from?: string;
  /** With `from`: the SELECT to read. */
  query?: string;
  /** With `from`: the query's columns, when the caller described it already (a sync): not described again. */
  sourceColumns?: string[];
  /**
   * With `from`: the caller's connection to the source (a sync's, which described the query).
   * The stage reads through it; the caller ends it if the load never took it.
   */
  sourceSession?: SourceSession;
  /**
   * A connection outside the pool that the caller keeps open until load() returns (a sync's,
   * which holds the sync's lock): the load is claimed on it rather than on a new connection.
   */
  claimSession?: pg.Client;
  tenant: string;
  /** Mapping name (looked up in `mappingsDir`) or path to a mapping file. */
  mapping: string;
  /** (Default: `mappings`) */
  mappingsDir?: string;
  /** Field delimiter; sniffed among `, ; TAB |` when not given. */
  delimiter?: string;
  /** Fail, promoting nothing, when more rows than this are rejected. */
  maxRejects?: number;
  /** Fail, promoting nothing, when more than this fraction (0–1) of rows read is rejected. */
  maxRejectRate?: number;
  /** Fail, promoting nothing, when more rows than this are superseded by a later (or earlier) line of the same key. */
  maxDuplicates?: number;
  /** Fail, promoting nothing, when more than this fraction (0–1) of rows read is superseded by a duplicate key. */
  maxDuplicateRate?: number;
  /** Run every step, then roll back and leave no trace. (Default: false) */
  dryRun?: boolean;
  /** Keep the staging and work tables. (Default: false) */
  keepStaging?: boolean;
  /** Load a file even if it was loaded already. (Default: false) */
  force?: boolean;
  /** Rows per MERGE batch. (Default: 10000) */
  batchSize?: number;
  /**
   * How long the mapping's SQL may run (the transform's statement), in milliseconds: a mapping
   * that runs longer is stopped and the load fails naming it. (Default: 30 minutes)
   */
  mappingTimeoutMs?: number;
  /** Rows per staging commit. (Default: 100000) */
  chunkRows?: number;
  /**
   * Parallel COPY streams into the staging table, 1 to 8: one COPY is bound by one server
   * process's CPU. (Default: the number of CPU cores, at most 8)
   */
  jobs?: number;
  /** Register the load and leave it to a worker (`pgferry worker`): returns status `queued`. */
  queue?: boolean;
  /** The run of a sync this load is (set by runSync): its cursor moves as the load promotes. */
  sync?: SyncOfLoad;
  /** Who runs the load, shown in its progress (a worker's id). */
  runner?: string;
  onEvent?: (event: LoadEvent) => void;
}

/**
 * A sync's run, as its load records it (ferry.loads.options.sync): ferry.finish_sync() reads
 * it inside the promoting transaction.
 */
export interface SyncOfLoad {
  name: string;
  mode: 'append' | 'upsert' | 'mirror';
  /** A full pull (the first, or --full): in mirror mode, what it lacks is deleted. */
  full: boolean;
  /** The cursor column's name in the staging table, and how its values compare. */
  cursorColumn?: string;
  cursorType?: 'timestamptz' | 'timestamp' | 'date' | 'numeric' | 'text';
  /** The cursor this run pulled from (none for a full pull). */
  cursorFrom?: string | null;
  /** mirror: mark absent rows deleted in this column instead of deleting them. */
  softDelete?: string;
}

/** What a sync's promoted load did to the sync: its new cursor, and mirror's deletes. */
export interface SyncOutcome {
  cursor: string | null;
  deleted?: number;
  soft?: boolean;
  /** Why mirror deleted nothing although it ran. */
  kept?: string;
}

export type LoadEvent =
  | { type: 'registered'; loadId: number }
  | { type: 'step'; step: Step }
  | { type: 'stage-progress'; bytesRead: number; totalBytes: number; rowsRead: number }
  | { type: 'promote-progress'; done: number; total: number }
  /** A step failed for a passing reason (a lost connection, a deadlock) and is tried again. */
  | { type: 'retry'; step: Step | 'compile'; attempt: number; delayMs: number; error: string }
  /** Another load (or a rollback: 0) of the same tenant and table holds the promotion lock. */
  | { type: 'waiting'; forLoad: number }
  /** A server crash emptied the load's UNLOGGED staging: the source is staged again from its first line. */
  | { type: 'restage' };

export type Step = 'stage' | 'transform' | 'promote' | 'verify' | 'cleanup';

export interface LoadCounts {
  read: number;
  staged: number;
  unparseable: number;
  rejected: number;
  duplicates: number;
  inserted: number;
  updated: number;
  unchanged: number;
}

export interface RejectReason {
  rule: string;
  column: string | null;
  count: number;
  example: string;
}

export interface LoadResult {
  /** queued: registered for a worker (`load --queue`); cancelled: stopped by `pgferry cancel`. */
  status: 'succeeded' | 'failed' | 'dry_run' | 'skipped' | 'queued' | 'cancelled';
  loadId?: number;
  /** For a skipped file: the load that already brought it in. */
  previousLoadId?: number;
  /** For a skipped file: that load is still on its way (queued or running), not yet succeeded. */
  previousLoadRunning?: boolean;
  mapping: { name: string; version?: number };
  file: string;
  delimiter?: string;
  /** How the file was read: format, wrapper, encoding, sheet, records, table. */
  source?: SourceSummary;
  counts: LoadCounts;
  reasons: RejectReason[];
  timings: Partial<Record<Step, number>>;
  error?: string;
  /** A load failed for a passing reason (the server unreachable): `pgferry resume` finishes it. */
  resumable?: boolean;
  /** For a sync's run: the cursor after it, and what mirror deleted. */
  sync?: SyncOutcome;
  /**
   * A dry run (validate, load --dry-run): every reject, and every line superseded by a later
   * one of the same key (rule `duplicate`), in file order; the catalog keeps none of them.
   */
  rejects?: RejectRow[];
}

/** What a load's summary says of how its file was read. */
export type SourceSummary = Omit<SourceLayout, 'columns' | 'letters' | 'bomBytes'>;
