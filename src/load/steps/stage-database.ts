import { pipeline } from 'node:stream/promises';

import type mysql from 'mysql2';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

import { describeMysqlQuery, readMysqlRecords } from '../../sources/database/mysql-source.js';
import { describePostgresColumns } from '../../sources/database/postgres-source.js';
import {
  endSourceConnection,
  openSourceConnection,
  type SourceConnection,
} from '../../sources/database/source-connection.js';
import { stageRecords } from './stage-records.js';
import type { StageProgress, StageResult } from './stage-result.js';

export interface StageDatabaseOptions {
  loadId: number;
  kind: 'postgres' | 'mysql';
  /** The source's URL (it may hold a password: never recorded). */
  url: string;
  /** What to call the source in messages. */
  display: string;
  query: string;
  /** A connection to the source opened already (it described the query): read through it. */
  connection?: Promise<SourceConnection>;
  columns: string[];
  stagingTable: string;
  /** The process's claim epoch: the staging commits only while it is still the load's. */
  claimEpoch?: number;
  onProgress?: (progress: StageProgress) => void;
}

/**
 * stage, from a source database, in one transaction (a query cannot be resumed half-way: a
 * load interrupted while staging reads it again).
 *
 * PostgreSQL: the source's `COPY (query) TO STDOUT`, each row numbered there, is piped
 * straight into the staging `COPY`: no per-row work in Node. MySQL: the driver's rows are
 * written as CSV into the staging `COPY` (see readMysqlRecords for how values are read).
 */
export async function stageFromDatabaseQuery(
  client: pg.ClientBase,
  options: StageDatabaseOptions,
): Promise<StageResult> {
  const opening =
    options.connection ?? openSourceConnection({ kind: options.kind, url: options.url, display: options.display });
  try {
    const source = await opening;
    return source.kind === 'mysql'
      ? await stageFromMysql(client, source.connection, options)
      : await stageFromPostgres(client, source.client, options);
  } finally {
    // Ended whatever happens, a connection handed over included: the stage owns it now.
    await opening.then(endSourceConnection, () => {});
  }
}

async function stageFromMysql(
  client: pg.ClientBase,
  connection: mysql.Connection,
  options: StageDatabaseOptions,
): Promise<StageResult> {
  const columns = await describeMysqlQuery(connection, options.query, options.display);
  return stageRecords(client, {
    loadId: options.loadId,
    items: readMysqlRecords(connection, options.query, columns),
    columns: options.columns,
    bytesRead: () => 0,
    stagingTable: options.stagingTable,
    claimEpoch: options.claimEpoch,
    chunkRows: Number.MAX_SAFE_INTEGER,
    onProgress: options.onProgress,
  });
}

/** PostgreSQL's type OID of boolean. */
const BOOL_OID = 16;

/**
 * What the source's COPY selects: every column as it is, but booleans as `true`/`false` (their
 * text cast), not COPY's `t`/`f`: booleans are staged alike from every source (MySQL, JSON,
 * XLSX), so one mapping serves them all. Columns with the same name can only be `source.*`.
 */
async function sourceColumnList(source: pg.Client, options: StageDatabaseOptions): Promise<string> {
  const columns = await describePostgresColumns(source, options.query, options.display);
  const names = columns.map((c) => c.name);
  if (!columns.some((c) => c.typeId === BOOL_OID) || new Set(names).size !== names.length) return 'source.*';
  return columns
    .map((c) => `source.${source.escapeIdentifier(c.name)}${c.typeId === BOOL_OID ? '::text' : ''}`)
    .join(', ');
}

async function stageFromPostgres(
  client: pg.ClientBase,
  source: pg.Client,
  options: StageDatabaseOptions,
): Promise<StageResult> {
  try {
    const columns = await sourceColumnList(source, options);
    await client.query('begin');
    const copyIn = client.query(copyFrom(`copy ${options.stagingTable} from stdin with (format csv, null '')`));
    const copyOut = source.query(
      copyTo(
        `copy (select row_number() over () as _line, ${columns} from (\n${options.query}\n) as source) to stdout with (format csv)`,
      ),
    );
    await pipeline(copyOut, copyIn);
    const rows = Number(copyIn.rowCount);
    if (options.claimEpoch !== undefined) {
      await client.query('select ferry.check_claim($1, $2)', [options.loadId, options.claimEpoch]);
    }
    await client.query('select ferry.checkpoint($1, $2, $3, $4)', [options.loadId, rows, rows, rows]);
    await client.query('commit');
    options.onProgress?.({ bytesRead: 0, rowsRead: rows });
    return { rowsRead: rows, rowsStaged: rows, unparseable: 0, lastLine: rows };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}
