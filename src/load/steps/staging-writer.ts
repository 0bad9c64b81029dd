import { once } from 'node:events';
import { finished } from 'node:stream/promises';

import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

import { CopyBuffer } from '../../sources/copy-buffer.js';

/** A record that could not be staged: it goes to ferry.rejects (step `parse`). */
export interface StagingReject {
  line: number;
  rule: string;
  message: string;
  raw: string;
}

export interface StagingWriterOptions {
  loadId: number;
  /** Quoted, qualified staging table (from ferry.prepare_staging). */
  stagingTable: string;
  /** The COPY's field delimiter: the records' own, for CSV. */
  delimiter: string;
  /** Rows per committed chunk; each commit records the checkpoint. (Default: 100000) */
  chunkRows?: number;
  /** Resuming: rows staged up to the checkpoint. (Default: 0) */
  alreadyStaged?: number;
  /** The process's claim epoch: each chunk commits only while it is still the load's (ferry.check_claim). */
  claimEpoch?: number;
}

/**
 * The COPY side of staging, whatever the format: rows collected in a CopyBuffer go to one
 * COPY per client (in turn), and every `chunkRows` rows the chunk commits with the load's
 * checkpoint (the last line handed over) and its parse rejects. A chunk is committed on every
 * stream before the first client records the checkpoint, so rows past the checkpoint may be
 * staged after a crash, never rows before it missing.
 */
export class StagingWriter {
  readonly out: CopyBuffer;
  /** The last line handed over (record or reject): the checkpoint once committed. */
  lastLine = 0;
  rowsStaged: number;

  private rejects: StagingReject[] = [];
  private copies: ReturnType<typeof copyFrom>[] | undefined;
  private nextStream = 0;
  private chunkStaged = 0;
  private streamError: Error | undefined;
  private readonly chunkRows: number;
  private readonly copySql: string;

  constructor(
    private readonly clients: pg.ClientBase[],
    private readonly options: StagingWriterOptions,
  ) {
    this.out = new CopyBuffer(options.delimiter);
    this.chunkRows = options.chunkRows ?? 100_000;
    this.rowsStaged = options.alreadyStaged ?? 0;
    this.copySql = `copy ${options.stagingTable} from stdin with (format csv, delimiter ${quoteLiteral(options.delimiter)}, null '')`;
  }

  reject(reject: StagingReject): void {
    this.rejects.push(reject);
    this.lastLine = reject.line;
  }

  /** Sends what was collected, and commits when the chunk is full. */
  async afterInput(recordsRead: number): Promise<void> {
    await this.flush();
    if (this.chunkStaged + this.out.rows >= this.chunkRows || this.rejects.length >= 10_000) {
      await this.commitChunk(recordsRead);
    }
  }

  /** Sends and commits the rest: the input is done. */
  async finish(recordsRead: number): Promise<void> {
    await this.flush();
    await this.commitChunk(recordsRead);
  }

  /** Rolls back the open chunk on every stream. */
  async abort(error: unknown): Promise<void> {
    for (const copy of this.copies ?? []) {
      // A COPY whose session was ended (its connection cut) has nothing left to roll back, and
      // pg-copy-streams then throws on destroy ("reading 'stream'" of its null connection):
      // that must not replace the error the load reports and retries on.
      try {
        copy.destroy(error as Error);
      } catch {
        // the connection is gone
      }
    }
    await Promise.all(this.clients.map((client) => client.query('rollback').catch(() => {})));
  }

  /**
   * Why a COPY failed: its stream's first error (the server's, or the lost connection's). Once
   * its session is gone, pg-copy-streams fails what comes next on its null connection
   * ("Cannot read properties of null (reading 'stream')"): that is the connection lost too, a
   * passing failure the load retries, not a bug to fail the load with.
   */
  private copyFailure(error: unknown): unknown {
    if (this.streamError) return this.streamError;
    if (error instanceof TypeError && /of (null|undefined) \(reading '(stream|sendCopyFail)'\)/.test(error.message)) {
      return new Error(`Connection terminated unexpectedly (a staging COPY lost its connection: ${error.message})`, {
        cause: error,
      });
    }
    return error;
  }

  private async startChunk(): Promise<void> {
    const copies: ReturnType<typeof copyFrom>[] = [];
    for (const client of this.clients) {
      await client.query('begin');
      const copy = client.query(copyFrom(this.copySql));
      // Kept, not thrown: a stream can fail while another one is being written to.
      copy.on('error', (error) => (this.streamError ??= error));
      copies.push(copy);
    }
    this.copies = copies;
    this.chunkStaged = 0;
  }

  private async flush(): Promise<void> {
    if (this.out.size === 0) return;
    if (!this.copies) await this.startChunk();
    if (this.streamError) throw this.streamError;
    this.chunkStaged += this.out.rows;
    const copy = this.copies![this.nextStream];
    this.nextStream = (this.nextStream + 1) % this.clients.length;
    try {
      if (!copy.write(this.out.take())) await once(copy, 'drain');
    } catch (error) {
      throw this.copyFailure(error);
    }
  }

  private async commitChunk(recordsRead: number): Promise<void> {
    const [main, ...others] = this.clients;
    if (!this.copies) await this.startChunk();
    for (const copy of this.copies!) copy.end();
    // A stream's first error is the server's or the connection's; what the COPY stream throws
    // after it (on its null connection) only follows from it.
    await Promise.all(this.copies!.map((copy) => finished(copy))).catch((error: unknown) => {
      throw this.copyFailure(error);
    });
    // The fence, before any stream commits; it holds the load's row until the checkpoint commits.
    if (this.options.claimEpoch !== undefined) {
      await main.query('select ferry.check_claim($1, $2)', [this.options.loadId, this.options.claimEpoch]);
    }
    for (const client of others) await client.query('commit');
    this.rowsStaged += this.chunkStaged;
    if (this.rejects.length > 0) {
      await insertParseRejects(main, this.options.loadId, this.rejects);
      this.rejects = [];
    }
    await main.query('select ferry.checkpoint($1, $2, $3, $4)', [
      this.options.loadId,
      this.lastLine,
      recordsRead,
      this.rowsStaged,
    ]);
    await main.query('commit');
    this.copies = undefined;
  }
}

async function insertParseRejects(client: pg.ClientBase, loadId: number, rejects: StagingReject[]): Promise<void> {
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
