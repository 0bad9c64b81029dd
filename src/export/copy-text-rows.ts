import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

import type { ExportRow } from './export-column.js';

/** What a backslash followed by a letter stands for in COPY's text format. */
const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/**
 * Reads the output of `COPY … TO STDOUT` (text format, UTF-8) as rows: one line a row, fields
 * separated by TAB, `\N` for NULL and backslash escapes for backslash, TAB, CR, LF and the
 * like. Emits arrays of rows, one array per chunk read, so that a million rows are not a
 * million stream objects. Holds no more than one chunk and a partial line.
 */
export class CopyTextRows extends Transform {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  private count = 0;

  /**
   * @param width the number of columns every row must have
   * @param onRows called with the running row count after each chunk
   */
  constructor(
    private readonly width: number,
    private readonly onRows?: (rows: number) => void,
  ) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
  }

  /** Rows read so far. */
  get rows(): number {
    return this.count;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const text = this.rest + this.decoder.write(chunk);
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      this.rest = text;
      callback();
      return;
    }
    this.rest = text.slice(end + 1);
    let rows: ExportRow[];
    try {
      rows = this.parseLines(text, end);
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.count += rows.length;
    this.onRows?.(this.count);
    callback(null, rows);
  }

  override _flush(callback: TransformCallback): void {
    const text = this.rest + this.decoder.end();
    if (text !== '') {
      callback(new Error(`COPY output ended inside a row: ${JSON.stringify(text.slice(0, 40))}`));
      return;
    }
    callback();
  }

  /** The rows of text[0, end), end being the offset of the last line's \n. */
  private parseLines(text: string, end: number): ExportRow[] {
    const rows: ExportRow[] = [];
    let start = 0;
    while (start <= end) {
      const newline = text.indexOf('\n', start);
      const fields = text.slice(start, newline).split('\t');
      if (fields.length !== this.width) {
        throw new Error(`COPY output has ${fields.length} fields in a row, expected ${this.width}`);
      }
      const row: ExportRow = new Array(fields.length);
      for (let i = 0; i < fields.length; i++) {
        const field = fields[i];
        row[i] = field === '\\N' ? null : field.includes('\\') ? unescapeCopyText(field) : field;
      }
      rows.push(row);
      start = newline + 1;
    }
    return rows;
  }
}

/**
 * A field of COPY's text format with its backslash escapes decoded. COPY TO writes only
 * `\\`, `\b`, `\f`, `\n`, `\r`, `\t` and `\v` (never the octal or hex forms COPY FROM reads).
 */
export function unescapeCopyText(field: string): string {
  return field.replace(/\\(.)/gs, (_, char: string) => ESCAPES[char] ?? char);
}
