import { createHash, type Hash } from 'node:crypto';

import { PgferryError } from '../errors.js';
import {
  BACKUP_FORMAT,
  BACKUP_MAGIC,
  type BackupHeader,
  type BackupTableSum,
  type BackupTrailer,
} from './backup-manifest.js';

/** What reading a backup's plain bytes yields, in order. */
export type BackupPart =
  | { kind: 'header'; header: BackupHeader }
  | { kind: 'rows'; table: number; bytes: Buffer }
  | { kind: 'table end'; table: number; sum: BackupTableSum }
  | { kind: 'trailer'; trailer: BackupTrailer };

/** The longest header or trailer line read (a tenant's mappings are in the header). */
const MAX_LINE_BYTES = 256 * 1024 * 1024;
const NEWLINE = 0x0a;
const END_OF_SECTION = Buffer.from('\\.\n');

/**
 * Reads a backup's plain bytes (decrypted, decompressed) as its parts, checking as it goes and
 * at the end: the magic line, a header of this format, one section a table of the header, and
 * a trailer whose row counts and SHA-256s match what was read; nothing after it. Throws a
 * PgferryError naming what is wrong. Holds one chunk and a partial line at a time.
 */
export async function* readBackupParts(bytes: AsyncIterable<Buffer>): AsyncGenerator<BackupPart> {
  let pending: Buffer = Buffer.alloc(0);
  let state: 'magic' | 'header' | 'rows' | 'trailer' | 'end' = 'magic';
  let header: BackupHeader | undefined;
  let headerSha256 = '';
  const sums: BackupTableSum[] = [];
  let table = 0;
  let hash: Hash = createHash('sha256');
  let rows = 0;
  // Whether pending[0] starts a line: a section's end is a line of its own.
  let atLineStart = true;

  for await (const chunk of withEnd(bytes)) {
    if (chunk !== null) pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      if (state === 'rows') {
        const end = findEndOfSection(pending, atLineStart);
        if (end < 0) {
          // Up to the last whole line, less a tail that may be the start of `\.\n`.
          const keep = chunk === null ? 0 : tailToKeep(pending, atLineStart);
          const data = pending.subarray(0, pending.length - keep);
          if (data.length) {
            rows += countLines(data);
            hash.update(data);
            atLineStart = data[data.length - 1] === NEWLINE;
            yield { kind: 'rows', table, bytes: data };
          }
          pending = pending.subarray(pending.length - keep);
          if (chunk === null) throw damaged(`it ends inside the rows of ${tableName(header!, table)}`);
          break;
        }
        const data = pending.subarray(0, end);
        if (data.length) {
          rows += countLines(data);
          hash.update(data);
          yield { kind: 'rows', table, bytes: data };
        }
        pending = pending.subarray(end + END_OF_SECTION.length);
        const sum = { table: tableName(header!, table), rows, sha256: hash.digest('hex') };
        sums.push(sum);
        yield { kind: 'table end', table, sum };
        table++;
        hash = createHash('sha256');
        rows = 0;
        atLineStart = true;
        state = table < header!.tables.length ? 'rows' : 'trailer';
        continue;
      }
      if (state === 'end') {
        if (pending.length) throw damaged('it goes on after its trailer');
        if (chunk === null) return;
        break;
      }
      const newline = pending.indexOf(NEWLINE);
      if (newline < 0) {
        if (pending.length > MAX_LINE_BYTES) throw damaged(`its ${state} is longer than ${MAX_LINE_BYTES} bytes`);
        if (chunk === null)
          throw damaged(pending.length || state !== 'magic' ? `it ends inside its ${state}` : 'it is empty');
        break;
      }
      const line = pending.subarray(0, newline);
      pending = pending.subarray(newline + 1);
      if (state === 'magic') {
        if (line.toString('latin1') + '\n' !== BACKUP_MAGIC) throw damaged('it is not a pgferry tenant backup');
        state = 'header';
      } else if (state === 'header') {
        header = parseHeader(line);
        headerSha256 = createHash('sha256').update(line).digest('hex');
        yield { kind: 'header', header };
        state = header.tables.length ? 'rows' : 'trailer';
      } else {
        const trailer = parseTrailer(line);
        checkTrailer(trailer, headerSha256, sums);
        yield { kind: 'trailer', trailer };
        state = 'end';
      }
    }
  }
}

/** The chunks, then null once they end. */
async function* withEnd(bytes: AsyncIterable<Buffer>): AsyncGenerator<Buffer | null> {
  for await (const chunk of bytes) yield chunk;
  yield null;
}

/** Where the line `\.` starts in `data`, or -1. */
function findEndOfSection(data: Buffer, atLineStart: boolean): number {
  for (let from = 0; ;) {
    const at = data.indexOf(END_OF_SECTION, from);
    if (at < 0) return -1;
    if (at === 0 ? atLineStart : data[at - 1] === NEWLINE) return at;
    from = at + 1;
  }
}

/** Bytes at the end of `data` to keep for the next chunk: a partial line that may be `\.`. */
function tailToKeep(data: Buffer, atLineStart: boolean): number {
  const lastNewline = data.lastIndexOf(NEWLINE);
  const tail = data.length - (lastNewline + 1);
  if (lastNewline < 0 && !atLineStart) return 0;
  return tail < END_OF_SECTION.length && END_OF_SECTION.subarray(0, tail).equals(data.subarray(lastNewline + 1))
    ? tail
    : 0;
}

/** The rows in a piece of COPY text: its newlines (a newline in a value is written `\n`). */
export function countLines(data: Buffer): number {
  let n = 0;
  for (let at = data.indexOf(NEWLINE); at >= 0; at = data.indexOf(NEWLINE, at + 1)) n++;
  return n;
}

function tableName(header: BackupHeader, index: number): string {
  const t = header.tables[index];
  return `${t.schema}.${t.table}`;
}

function parseJson(line: Buffer, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw damaged(`its ${what} is not a JSON object`);
}

function parseHeader(line: Buffer): BackupHeader {
  const header = parseJson(line, 'header') as unknown as BackupHeader;
  if (header.format !== BACKUP_FORMAT) {
    throw damaged(`it is of format ${String(header.format)}; this pgferry reads format ${BACKUP_FORMAT}`);
  }
  const tables = header.tables as unknown;
  if (
    !Array.isArray(tables) ||
    !tables.every(
      (t: BackupHeader['tables'][number]) =>
        typeof t?.schema === 'string' &&
        typeof t.table === 'string' &&
        Array.isArray(t.columns) &&
        t.columns.length > 0 &&
        t.columns.every((c) => typeof c?.name === 'string' && typeof c.type === 'string'),
    )
  ) {
    throw damaged('its header does not list its tables and their columns');
  }
  if (typeof header.tenant?.slug !== 'string' || typeof header.tenant.key !== 'string') {
    throw damaged('its header does not name its tenant');
  }
  for (const field of ['takenAt', 'snapshot', 'pgferry', 'server'] as const) {
    if (typeof header[field] !== 'string') throw damaged(`its header lacks ${field}`);
  }
  if (!Array.isArray(header.catalog?.mappings) || !Array.isArray(header.catalog.syncs)) {
    throw damaged("its header lacks pgferry's records of the tenant (catalog)");
  }
  return header;
}

function parseTrailer(line: Buffer): BackupTrailer {
  const trailer = parseJson(line, 'trailer') as unknown as BackupTrailer;
  if (typeof trailer.headerSha256 !== 'string' || !Array.isArray(trailer.tables)) {
    throw damaged('its trailer lacks its checksums');
  }
  return trailer;
}

function checkTrailer(trailer: BackupTrailer, headerSha256: string, read: BackupTableSum[]): void {
  if (trailer.headerSha256 !== headerSha256) throw damaged('its header does not match its checksum');
  if (trailer.tables.length !== read.length) {
    throw damaged(`its trailer sums up ${trailer.tables.length} tables, the file holds ${read.length}`);
  }
  read.forEach((sum, i) => {
    const written = trailer.tables[i];
    if (written.rows !== sum.rows) {
      throw damaged(`${sum.table} holds ${sum.rows} rows, its trailer says ${String(written.rows)}`);
    }
    if (written.sha256 !== sum.sha256) throw damaged(`the rows of ${sum.table} do not match their SHA-256`);
  });
}

function damaged(reason: string): PgferryError {
  return new PgferryError(`backup refused: ${reason}`);
}
