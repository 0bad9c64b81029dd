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
  /**
   * Resuming: the lines up to this one are staged already (the load's checkpoint). The file
   * is read again from its start, but only later records are sent. (Default: 0)
   */
  resumeAfterLine?: number;
  /** Resuming: rows staged up to the checkpoint. (Default: 0) */
  alreadyStaged?: number;
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
 * Client memory stays flat: one file chunk and one COPY buffer per stream at a time.
 *
 * With several clients, each runs a COPY of its own and the file's pieces go to them in turn:
 * one COPY is bound by one server process's CPU. A chunk is committed on every stream before
 * the first client records the checkpoint, so rows past the checkpoint may be staged after a
 * crash, never rows before it missing.
 */
export async function stageCsv(clients: pg.ClientBase | pg.ClientBase[], options: StageOptions): Promise<StageResult> {
  const streams = Array.isArray(clients) ? clients : [clients];
  const [main] = streams;
  const chunkRows = options.chunkRows ?? 100_000;
  const out = new CopyBuffer(options.delimiter);
  const resumeAfter = options.resumeAfterLine ?? 0;
  let rejects: ParseReject[] = [];
  let lastLine = resumeAfter;
  let rowsStaged = options.alreadyStaged ?? 0;
  let bytesRead = 0;

  const scanner = new CsvScanner({
    delimiter: options.delimiter,
    expectedFields: options.columns,
    onRecord: (line, raw) => {
      if (line <= resumeAfter) return;
      out.append(line, raw);
      lastLine = line;
    },
    onReject: (reject) => {
      if (reject.line <= resumeAfter) return;
      rejects.push(reject);
      lastLine = reject.line;
    },
  });

  const copySql = `copy ${options.stagingTable} from stdin with (format csv, delimiter ${quoteLiteral(options.delimiter)}, null '')`;
  // One open transaction and COPY per stream while a chunk is being staged.
  let copies: ReturnType<typeof copyFrom>[] | undefined;
  let nextStream = 0;
  let chunkStaged = 0;
  let streamError: Error | undefined;

  const startChunk = async () => {
    copies = [];
    for (const client of streams) {
      await client.query('begin');
      const copy = client.query(copyFrom(copySql));
      // Kept, not thrown: a stream can fail while another one is being written to.
      copy.on('error', (error) => (streamError ??= error));
      copies.push(copy);
    }
    chunkStaged = 0;
  };
  const flush = async () => {
    if (out.size === 0) return;
    if (!copies) await startChunk();
    if (streamError) throw streamError;
    chunkStaged += out.rows;
    const copy = copies![nextStream];
    nextStream = (nextStream + 1) % streams.length;
    if (!copy.write(out.take())) await once(copy, 'drain');
  };
  const commitChunk = async () => {
    if (!copies) await startChunk();
    for (const copy of copies!) copy.end();
    await Promise.all(copies!.map((copy) => finished(copy)));
    for (const client of streams.slice(1)) await client.query('commit');
    rowsStaged += chunkStaged;
    if (rejects.length > 0) {
      await insertParseRejects(main, options.loadId, rejects);
      rejects = [];
    }
    await main.query('select ferry.checkpoint($1, $2, $3, $4)', [
      options.loadId,
      lastLine,
      scanner.recordsRead,
      rowsStaged,
    ]);
    await main.query('commit');
    copies = undefined;
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
    for (const copy of copies ?? []) copy.destroy(error as Error);
    await Promise.all(streams.map((client) => client.query('rollback').catch(() => {})));
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
