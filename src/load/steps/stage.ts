import type pg from 'pg';

import { PgferryError } from '../../errors.js';
import { openCsvBytes, openSourceItems } from '../../sources/file/open-file-source.js';
import { asSourceError } from '../../sources/source-syntax-error.js';
import type { LoadRun } from '../load-run.js';
import { stageCsvBytes } from './stage-csv-bytes.js';
import { stageFromDatabaseQuery } from './stage-database.js';
import { stageRecords } from './stage-records.js';

/**
 * stage: the source into the load's staging table (ferry.prepare_staging made it), from
 * `from` on: CSV on `run.jobs` parallel COPY streams, other formats and source databases on one.
 */
export async function stage(
  pool: pg.Pool,
  run: LoadRun,
  stagingTable: string,
  from: LoadRun['from'],
): Promise<{ rowsRead: number }> {
  const { loadId, file, source, options, emit } = run;
  const progress = (totalBytes: number) => (p: { bytesRead: number; rowsRead: number }) =>
    emit({ type: 'stage-progress', bytesRead: p.bytesRead, totalBytes, rowsRead: p.rowsRead });
  // What staging needs whatever the format: where to write, and where to go on from.
  const staging = {
    loadId,
    stagingTable,
    chunkRows: options.chunkRows,
    resumeAfterLine: from.afterLine,
    alreadyStaged: from.rowsStaged,
    claimEpoch: run.claim.epoch,
  };
  try {
    if (source.format === 'postgres' || source.format === 'mysql') {
      return await stageFromDatabase(pool, run, staging);
    }
    if (source.format === 'csv') {
      const opened = await openCsvBytes(file, source, options);
      try {
        return await withClients(pool, run.jobs, (clients) =>
          stageCsvBytes(clients, {
            ...staging,
            chunks: opened.items,
            bytesRead: opened.bytesRead,
            delimiter: source.delimiter!,
            columns: run.columns.length,
            encoding: source.encoding,
            onProgress: progress(opened.totalBytes),
          }),
        );
      } finally {
        opened.close();
      }
    }
    const opened = await openSourceItems(file, source, options);
    try {
      // Parsing in Node is what limits these formats, not COPY: one stream.
      return await withClients(pool, 1, ([client]) =>
        stageRecords(client, {
          ...staging,
          items: opened.items,
          columns: source.columns,
          bytesRead: opened.bytesRead,
          onProgress: progress(opened.totalBytes),
        }),
      );
    } finally {
      opened.close();
    }
  } catch (error) {
    throw asSourceError(error, file);
  }
}

/** stage, from a source database (load --from). */
async function stageFromDatabase(
  pool: pg.Pool,
  run: LoadRun,
  staging: { loadId: number; stagingTable: string; claimEpoch: number },
): Promise<{ rowsRead: number }> {
  const { source } = run;
  if (!run.sourceUrl) throw new PgferryError(`load ${run.loadId} reads ${source.from}, whose URL this process lacks`);
  return withClients(pool, 1, ([client]) =>
    stageFromDatabaseQuery(client, {
      ...staging,
      kind: source.format as 'postgres' | 'mysql',
      url: run.sourceUrl!,
      display: source.from ?? source.format,
      query: source.query!,
      connection: run.sourceSession?.take(),
      columns: source.columns,
      onProgress: (p) => run.emit({ type: 'stage-progress', bytesRead: 0, totalBytes: 0, rowsRead: p.rowsRead }),
    }),
  );
}

async function withClients<T>(pool: pg.Pool, count: number, fn: (clients: pg.PoolClient[]) => Promise<T>): Promise<T> {
  const clients: pg.PoolClient[] = [];
  let failed = false;
  try {
    for (let i = 0; i < count; i++) clients.push(await pool.connect());
    return await fn(clients);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // After a failure a connection may be broken: closed, not returned to the pool.
    for (const client of clients) client.release(failed);
  }
}
