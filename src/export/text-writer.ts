import { Transform, type TransformCallback } from 'node:stream';

import type { ExportRow } from './export-column.js';

/** A text format: what comes before the rows, each row, and what comes after. */
export interface TextFormat {
  begin(): string;
  /** One row's text; `index` counts from 1. */
  row(values: ExportRow, index: number): string;
  end(): string;
}

/** Text is passed on in chunks of about this many characters: fewer, larger writes. */
const CHUNK = 256 * 1024;

/**
 * Turns arrays of rows (as CopyTextRows emits them) into UTF-8 text in a format, passed on in
 * chunks of about 256 KB: the rows are never held longer than that.
 */
export class TextWriter extends Transform {
  private index = 0;
  private begun = false;
  private pending = '';

  constructor(private readonly format: TextFormat) {
    super({ writableObjectMode: true, writableHighWaterMark: 4 });
  }

  override _transform(rows: ExportRow[], _encoding: BufferEncoding, callback: TransformCallback): void {
    let text = this.pending + this.begin();
    try {
      for (const row of rows) text += this.format.row(row, ++this.index);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (text.length < CHUNK) {
      this.pending = text;
      callback();
    } else {
      this.pending = '';
      callback(null, Buffer.from(text, 'utf8'));
    }
  }

  override _flush(callback: TransformCallback): void {
    callback(null, Buffer.from(this.pending + this.begin() + this.format.end(), 'utf8'));
  }

  private begin(): string {
    if (this.begun) return '';
    this.begun = true;
    return this.format.begin();
  }
}
