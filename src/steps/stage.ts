import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { finished } from 'node:stream/promises';

import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

import { CopyBuffer } from '../sources/copy-buffer.js';
import { CsvScanner, type ParseReject } from '../sources/csv-scanner.js';

export interface StageOptions {
  loadId: number;
  file: string;
  delimiter: string;
  /** Quoted, qualified staging table (from ferry.prepare_staging). */
  stagingTable: string;
  /** Number of staged columns (header fields). */
  columns: number;
  /** Rows per committed chunk; each commit records the checkpoint. (Default: 100000) */
  chunkRows?: number;
  onProgress?: (progress: StageProgress) => void;
}

export interface StageProgress {
  bytesRead: number;
  rowsRead: number;
}

export interface StageResult {
  rowsRead: number;
  rowsStaged: number;
  parseRejects: number;
  lastLine: number;
}

/**
 * stage: streams a CSV file into the load's UNLOGGED staging table with COPY, in chunks that
 * each commit with the load's checkpoint. Well-formed records go to COPY as the bytes they
 * are, prefixed with their line number; malformed ones become rejects (step `parse`).
 * Client memory stays flat: one file chunk and one COPY buffer at a time.
 */
export async function stageCsv(client: pg.ClientBase, options: StageOptions): Promise<StageResult> {
  const chunkRows = options.chunkRows ?? 100_000;
  const out = new CopyBuffer(options.delimiter);
  let rejects: ParseReject[] = [];
  let lastLine = 0;
  let rowsStaged = 0;
  let bytesRead = 0;

  const scanner = new CsvScanner({
    delimiter: options.delimiter,
    expectedFields: options.columns,
    onRecord: (line, raw) => {
      out.append(line, raw);
      lastLine = line;
    },
    onReject: (reject) => {
      rejects.push(reject);
      lastLine = reject.line;
    },
  });

  const copySql = `copy ${options.stagingTable} from stdin with (format csv, delimiter ${quoteLiteral(options.delimiter)}, null '')`;
  let copy: ReturnType<typeof copyFrom> | undefined;
  let chunkStaged = 0;

  const startChunk = async () => {
    await client.query('begin');
    copy = client.query(copyFrom(copySql));
    chunkStaged = 0;
  };
  const flush = async () => {
    if (out.size === 0) return;
    if (!copy) await startChunk();
    chunkStaged += out.rows;
    if (!copy!.write(out.take())) await once(copy!, 'drain');
  };
  const commitChunk = async () => {
    if (!copy) await startChunk();
    copy!.end();
    await finished(copy!);
    rowsStaged += chunkStaged;
    if (rejects.length > 0) {
      await insertParseRejects(client, options.loadId, rejects);
      rejects = [];
    }
    await client.query('select ferry.checkpoint($1, $2, $3, $4)', [
      options.loadId,
      lastLine,
      scanner.recordsRead,
      rowsStaged,
    ]);
    await client.query('commit');
    copy = undefined;
  };

  try {
    for await (const chunk of createReadStream(options.file, { highWaterMark: 1 << 20 })) {
      bytesRead += (chunk as Buffer).length;
      scanner.push(chunk as Buffer);
      await flush();
      options.onProgress?.({ bytesRead, rowsRead: scanner.recordsRead });
      if (chunkStaged + out.rows >= chunkRows || rejects.length >= 10_000) await commitChunk();
    }
    scanner.finish();
    await flush();
    await commitChunk();
  } catch (error) {
    copy?.destroy(error as Error);
    await client.query('rollback').catch(() => {});
    throw error;
  }
  options.onProgress?.({ bytesRead, rowsRead: scanner.recordsRead });
  return { rowsRead: scanner.recordsRead, rowsStaged, parseRejects: scanner.recordsRead - rowsStaged, lastLine };
}

async function insertParseRejects(client: pg.ClientBase, loadId: number, rejects: ParseReject[]): Promise<void> {
  await client.query(
    `insert into ferry.rejects (load_id, step, line, rule, message, raw)
     select $1, 'parse', r.line, r.rule, r.message, r.raw
     from unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) as r(line, rule, message, raw)`,
    [
      loadId,
      rejects.map((r) => r.line),
      rejects.map((r) => r.rule),
      rejects.map((r) => r.message),
      // PostgreSQL text cannot hold NUL.
      rejects.map((r) => r.raw.replaceAll('\0', '\\0')),
    ],
  );
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
