import type pg from 'pg';

import { CsvScanner } from '../../sources/file/csv/csv-scanner.js';
import type { StageProgress, StageResult } from './stage-result.js';
import { StagingWriter } from './staging-writer.js';

export interface StageCsvBytesOptions {
  loadId: number;
  /** The data's bytes, as UTF-8 (see utf8Bytes). */
  chunks: AsyncIterable<Buffer>;
  /** How far through the file reading is, for progress. */
  bytesRead: () => number;
  delimiter: string;
  /** Quoted, qualified staging table (from ferry.prepare_staging). */
  stagingTable: string;
  /** Number of staged columns (header fields). */
  columns: number;
  /** The file's encoding, when not UTF-8: named in encoding rejects. */
  encoding?: string;
  /** Rows per committed chunk; each commit records the checkpoint. (Default: 100000) */
  chunkRows?: number;
  /**
   * Resuming: the lines up to this one are staged already (the load's checkpoint). The file
   * is read again from its start, but only later records are sent. (Default: 0)
   */
  resumeAfterLine?: number;
  /** Resuming: rows staged up to the checkpoint. (Default: 0) */
  alreadyStaged?: number;
  /** The process's claim epoch: each chunk is fenced by it (StagingWriterOptions). */
  claimEpoch?: number;
  onProgress?: (progress: StageProgress) => void;
}

/**
 * stage, for CSV: streams a CSV file's bytes into the load's UNLOGGED staging table with COPY,
 * in chunks that each commit with the load's checkpoint. Well-formed records go to COPY as the
 * bytes they are, prefixed with their line number; malformed ones become rejects (step `parse`).
 * Client memory stays flat: one file chunk and one COPY buffer per stream at a time.
 *
 * With several clients, each runs a COPY of its own and the file's pieces go to them in turn:
 * one COPY is bound by one server process's CPU.
 */
export async function stageCsvBytes(
  clients: pg.ClientBase | pg.ClientBase[],
  options: StageCsvBytesOptions,
): Promise<StageResult> {
  const streams = Array.isArray(clients) ? clients : [clients];
  const resumeAfter = options.resumeAfterLine ?? 0;
  const writer = new StagingWriter(streams, { ...options, alreadyStaged: options.alreadyStaged });
  writer.lastLine = resumeAfter;

  const scanner = new CsvScanner({
    delimiter: options.delimiter,
    expectedFields: options.columns,
    encoding: options.encoding,
    onRecord: (line, raw) => {
      if (line <= resumeAfter) return;
      writer.out.append(line, raw);
      writer.lastLine = line;
    },
    onReject: (reject) => {
      if (reject.line <= resumeAfter) return;
      writer.reject(reject);
    },
  });

  try {
    for await (const chunk of options.chunks) {
      scanner.push(chunk);
      await writer.afterInput(scanner.recordsRead);
      options.onProgress?.({ bytesRead: options.bytesRead(), rowsRead: scanner.recordsRead });
    }
    scanner.finish();
    await writer.finish(scanner.recordsRead);
  } catch (error) {
    await writer.abort(error);
    throw error;
  }
  options.onProgress?.({ bytesRead: options.bytesRead(), rowsRead: scanner.recordsRead });
  return {
    rowsRead: scanner.recordsRead,
    rowsStaged: writer.rowsStaged,
    unparseable: scanner.recordsRead - writer.rowsStaged,
    lastLine: writer.lastLine,
  };
}
