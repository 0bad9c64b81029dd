/**
 * Collects COPY input (CSV records prefixed with their line number) into one growing buffer,
 * so that a file chunk becomes a single write to the COPY stream.
 */
export class CopyBuffer {
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  rows = 0;

  constructor(private readonly delimiter: string) {}

  /** Appends `<line><delimiter><raw>\n`. */
  append(line: number, raw: Buffer): void {
    const prefix = `${line}${this.delimiter}`;
    const need = this.used + prefix.length + raw.length + 1;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    this.used += this.buf.write(prefix, this.used, 'latin1');
    this.used += raw.copy(this.buf, this.used);
    this.buf[this.used++] = 0x0a;
    this.rows++;
  }

  /** Appends `<line><delimiter><csv>\n`, the record already written as CSV text. */
  appendText(line: number, csv: string): void {
    const text = `${line}${this.delimiter}${csv}\n`;
    const need = this.used + Buffer.byteLength(text);
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    this.used += this.buf.write(text, this.used, 'utf8');
    this.rows++;
  }

  get size(): number {
    return this.used;
  }

  /** The collected bytes (a copy) and a fresh start. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    this.rows = 0;
    return out;
  }
}
