import { pipeline } from 'node:stream/promises';

import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

import { describeMysqlQuery, openMysqlSource, readMysqlRecords } from '../sources/mysql-source.js';
import { openPostgresSource } from '../sources/postgres-source.js';
import type { StageProgress, StageResult } from './stage.js';
import { stageRecords } from './stage-records.js';

export interface StageDatabaseOptions {
  loadId: number;
  kind: 'postgres' | 'mysql';
  /** The source's URL (it may hold a password: never recorded). */
  url: string;
  /** What to call the source in messages. */
  display: string;
  query: string;
  columns: string[];
  stagingTable: string;
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
  if (options.kind === 'mysql') {
    const connection = await openMysqlSource(options.url, options.display);
    try {
      const columns = await describeMysqlQuery(connection, options.query, options.display);
      return await stageRecords(client, {
        loadId: options.loadId,
        items: readMysqlRecords(connection, options.query, columns),
        columns: options.columns,
        bytesRead: () => 0,
        stagingTable: options.stagingTable,
        chunkRows: Number.MAX_SAFE_INTEGER,
        onProgress: options.onProgress,
      });
    } finally {
      connection.destroy();
    }
  }

  const source = await openPostgresSource(options.url, options.display);
  try {
    await client.query('begin');
    const copyIn = client.query(copyFrom(`copy ${options.stagingTable} from stdin with (format csv, null '')`));
    const copyOut = source.query(
      copyTo(
        `copy (select row_number() over () as _line, source.* from (\n${options.query}\n) as source) to stdout with (format csv)`,
      ),
    );
    await pipeline(copyOut, copyIn);
    const rows = Number(copyIn.rowCount);
    await client.query('select ferry.checkpoint($1, $2, $3, $4)', [options.loadId, rows, rows, rows]);
    await client.query('commit');
    options.onProgress?.({ bytesRead: 0, rowsRead: rows });
    return { rowsRead: rows, rowsStaged: rows, parseRejects: 0, lastLine: rows };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    await source.end().catch(() => {});
  }
}
