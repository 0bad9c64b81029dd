import { isUtf8 } from 'node:buffer';

/** A record that could not be staged, and why. */
export interface ParseReject {
  /** Physical line where the record starts (1-based). */
  line: number;
  rule: 'column_count' | 'unclosed_quote' | 'malformed_quote' | 'encoding' | 'record_too_large';
  message: string;
  /** The offending text as read (decoded leniently, cut to `maxRawChars`). */
  raw: string;
}

export interface CsvScannerOptions {
  /** Field delimiter, one ASCII byte. */
  delimiter: string;
  /** Largest record accepted, in bytes. (Default: 16 MiB) */
  maxRecordBytes?: number;
  /** Largest raw text kept for a reject. (Default: 64 KiB) */
  maxRawChars?: number;
  /**
   * The file's encoding when it is not UTF-8: the bytes come transcoded to UTF-8, with 0xFF
   * where the file had bytes not valid in its encoding; rejects name that encoding.
   */
  encoding?: string;
  /**
   * Called for each well-formed record: `raw` is its bytes without the line terminator, valid
   * CSV that COPY (FORMAT csv) parses exactly as the scanner did; `fields` its field count.
   * `raw` is only valid during the call.
   */
  onRecord: (line: number, raw: Buffer, fields: number) => void;
  onReject: (reject: ParseReject) => void;
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_RAW_CHARS = 64 * 1024;

/**
 * A streaming CSV scanner that tracks only quoting and field counts (RFC 4180, `"` quotes,
 * `""` escapes, LF, CRLF or CR line ends). Well-formed records are handed on as their raw
 * bytes; malformed ones become rejects naming their line.
 *
 * A quote that never closes would otherwise swallow the rest of the file: when a record that
 * spans several lines turns out malformed (wrong field count, text after a closing quote,
 * end of file inside quotes, too large), only its first line is rejected and scanning resumes
 * on the next line.
 *
 * The first record seen is the header; `expectedFields` is taken from it unless set.
 *
 * @example
 *   const scanner = new CsvScanner({ delimiter: ',', onRecord, onReject });
 *   for await (const chunk of stream) scanner.push(chunk);
 *   scanner.finish();
 */
export class CsvScanner {
  /** Field count every record must have; set from the header when not given. */
  expectedFields: number | undefined;
  /** Records handed to onRecord or onReject, header excluded. */
  recordsRead = 0;
  /** Header fields, decoded, once the first record was read. */
  header: string[] | undefined;

  private readonly delimiter: number;
  private readonly maxRecordBytes: number;
  private readonly maxRawChars: number;
  private readonly onRecord: CsvScannerOptions['onRecord'];
  private readonly onReject: CsvScannerOptions['onReject'];
  private readonly encoding: string | undefined;

  private buf: Buffer = Buffer.alloc(0);
  /** Line number of the record starting at buf[0]. */
  private line = 1;
  /** Scan state for the record starting at buf[0], kept across chunks. */
  private pos = 0;
  private fields = 1;
  private fieldStart = 0;
  private inQuote = false;
  private afterClose = false;
  private bareQuote = false;
  private malformed = false;
  private newlines = 0;
  private firstLineEnd = -1;
  /** Skipping the rest of an oversized single line: its start line, or 0. */
  private skippingFrom = 0;
  private skippedHead = '';
  private bomChecked = false;

  constructor(options: CsvScannerOptions & { expectedFields?: number }) {
    if (
      Buffer.byteLength(options.delimiter) !== 1 ||
      options.delimiter === '"' ||
      options.delimiter === '\n' ||
      options.delimiter === '\r'
    ) {
      throw new Error(`unsupported delimiter ${JSON.stringify(options.delimiter)}`);
    }
    this.delimiter = options.delimiter.charCodeAt(0);
    this.maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    this.maxRawChars = options.maxRawChars ?? DEFAULT_MAX_RAW_CHARS;
    this.onRecord = options.onRecord;
    this.onReject = options.onReject;
    this.expectedFields = options.expectedFields;
    this.encoding = options.encoding === 'utf-8' ? undefined : options.encoding;
  }

  /** Feeds the next bytes of the file. */
  push(chunk: Buffer): void {
    if (!this.bomChecked) {
      const joined = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      if (joined.length < 3) {
        this.buf = Buffer.from(joined);
        return;
      }
      this.bomChecked = true;
      this.buf = Buffer.alloc(0);
      chunk = joined[0] === 0xef && joined[1] === 0xbb && joined[2] === 0xbf ? joined.subarray(3) : joined;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.scan(false);
  }

  /** Ends the input: the last record may lack a line terminator. */
  finish(): void {
    if (!this.bomChecked) {
      this.bomChecked = true;
      const b = this.buf;
      if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) this.buf = b.subarray(3);
    }
    this.scan(true);
  }

  private scan(final: boolean): void {
    const delim = this.delimiter;
    for (;;) {
      if (this.skippingFrom) {
        if (!this.skip(final)) return;
        continue;
      }
      const buf = this.buf;
      const len = buf.length;
      let i = this.pos;
      let recordEnd = -1;
      let next = -1;
      while (i < len) {
        const c = buf[i];
        if (this.inQuote) {
          // Inside quotes only a quote matters; jump to it.
          const q = buf.indexOf(QUOTE, i);
          // A CR ending the chunk may be the first half of a CRLF: look at it again later.
          const stop = q >= 0 ? q : !final && buf[len - 1] === CR ? len - 1 : len;
          for (let j = i; j < stop; j++) {
            const d = buf[j];
            if (d === LF || (d === CR && buf[j + 1] !== LF)) this.noteNewline(j);
          }
          if (q < 0) {
            i = stop;
            break;
          }
          this.inQuote = false;
          this.afterClose = true;
          i = q + 1;
          continue;
        }
        if (this.afterClose) {
          this.afterClose = false;
          if (c === QUOTE) {
            this.inQuote = true;
            i++;
            continue;
          }
          if (c !== delim && c !== LF && c !== CR) this.malformed = true;
        }
        if (c === delim) {
          this.fields++;
          this.fieldStart = i + 1;
        } else if (c === QUOTE) {
          if (i === this.fieldStart) this.inQuote = true;
          else this.bareQuote = true;
        } else if (c === LF) {
          recordEnd = i;
          next = i + 1;
          break;
        } else if (c === CR) {
          if (i + 1 >= len && !final) break;
          recordEnd = i;
          next = buf[i + 1] === LF ? i + 2 : i + 1;
          break;
        }
        i++;
      }

      if (recordEnd < 0) {
        if (i > this.maxRecordBytes) {
          this.recordTooLarge(i);
          continue;
        }
        if (!final) {
          this.pos = i;
          return;
        }
        if (len === 0) return;
        if (this.inQuote) {
          this.rejectFirstLineOrRecord(
            'unclosed_quote',
            'a quoted field is not closed before the end of the file',
            len,
            len,
          );
          continue;
        }
        recordEnd = len;
        next = len;
      }
      if (recordEnd > this.maxRecordBytes) {
        this.recordTooLarge(recordEnd);
        continue;
      }
      this.endRecord(recordEnd, next);
    }
  }

  private noteNewline(at: number): void {
    if (this.newlines === 0) this.firstLineEnd = at;
    this.newlines++;
  }

  /** A complete record occupies buf[0, end); the next one starts at `next`. */
  private endRecord(end: number, next: number): void {
    const raw = this.buf.subarray(0, end);
    const line = this.line;
    if (end === 0) {
      // A blank line is no record.
      this.advance(next, 1);
      return;
    }
    if (this.header === undefined) {
      this.header = splitFields(raw, this.delimiter);
      this.expectedFields ??= this.header.length;
      this.advance(next, 1 + this.newlines);
      return;
    }
    const expected = this.expectedFields ?? this.fields;
    if (this.malformed) {
      this.rejectFirstLineOrRecord(
        'malformed_quote',
        'text follows a closing quote (a quote inside a quoted field must be doubled)',
        end,
        next,
      );
      return;
    }
    if (this.fields !== expected) {
      this.rejectFirstLineOrRecord('column_count', `expected ${expected} fields, found ${this.fields}`, end, next);
      return;
    }
    const encodingProblem = checkEncoding(raw, this.delimiter, this.encoding);
    this.recordsRead++;
    if (encodingProblem) {
      this.onReject({ line, rule: 'encoding', message: encodingProblem, raw: this.rawText(raw) });
    } else if (this.bareQuote) {
      // A quote inside an unquoted field (5" screen) is kept as text: re-quote that field so
      // that COPY reads it the same way (the other fields stay as written: "" is not NULL).
      this.onRecord(line, requoteBareQuotes(raw, this.delimiter), this.fields);
    } else {
      this.onRecord(line, raw, this.fields);
    }
    this.advance(next, 1 + this.newlines);
  }

  /**
   * A record spanning several lines that is malformed is most likely an unclosed quote that
   * swallowed the lines after it: reject its first line only and scan again from the next.
   */
  private rejectFirstLineOrRecord(rule: ParseReject['rule'], message: string, end: number, next: number): void {
    if (this.header === undefined) {
      throw new CsvHeaderError(this.line, `the header is malformed: ${message}`);
    }
    this.recordsRead++;
    if (this.newlines > 0) {
      const firstEnd = this.firstLineEnd;
      const afterFirst = this.buf[firstEnd] === CR && this.buf[firstEnd + 1] === LF ? firstEnd + 2 : firstEnd + 1;
      this.onReject({
        line: this.line,
        rule: 'unclosed_quote',
        message: `a quoted field opened on this line does not close properly (${message}); the lines after it were read again as records`,
        raw: this.rawText(this.buf.subarray(0, this.buf[firstEnd - 1] === CR ? firstEnd - 1 : firstEnd)),
      });
      this.advance(afterFirst, 1);
      return;
    }
    this.onReject({ line: this.line, rule, message, raw: this.rawText(this.buf.subarray(0, end)) });
    this.advance(next, 1);
  }

  /**
   * The record at buf[0] is longer than maxRecordBytes (at least `scanned` bytes were seen, and
   * always more than maxRecordBytes: every line end within the limit is known). The decision
   * only depends on those first bytes, so it is the same however the input is chunked.
   */
  private recordTooLarge(scanned: number): void {
    if (this.newlines > 0 && this.firstLineLength() <= this.maxRecordBytes) {
      this.rejectFirstLineOrRecord('record_too_large', 'record too large', scanned, scanned);
      return;
    }
    if (this.header === undefined) {
      throw new CsvHeaderError(this.line, `the header line is longer than ${this.maxRecordBytes} bytes`);
    }
    // Its first physical line is longer than the limit: drop that line as it streams by,
    // keeping its beginning.
    this.skippingFrom = this.line;
    const head = this.buf.subarray(0, Math.min(this.maxRecordBytes, this.maxRawChars * 4));
    this.skippedHead = `${head.toString('utf8').slice(0, this.maxRawChars)}…`;
    this.resetRecordState();
  }

  /** Bytes of the record's first physical line, without its terminator. */
  private firstLineLength(): number {
    const end = this.firstLineEnd;
    return this.buf[end] === LF && end > 0 && this.buf[end - 1] === CR ? end - 1 : end;
  }

  /**
   * Drops bytes up to the end of the oversized line (LF, CRLF or CR). False when more input is
   * needed; buf then holds at most a CR that may be the first half of a CRLF.
   */
  private skip(final: boolean): boolean {
    const buf = this.buf;
    const lf = buf.indexOf(LF);
    const cr = buf.subarray(0, lf < 0 ? buf.length : lf).indexOf(CR);
    const end = cr >= 0 ? cr : lf;
    if (!final && (end < 0 || (end === cr && end === buf.length - 1))) {
      this.buf = end < 0 ? Buffer.alloc(0) : buf.subarray(end);
      return false;
    }
    const next = end < 0 ? buf.length : buf[end] === CR && buf[end + 1] === LF ? end + 2 : end + 1;
    this.recordsRead++;
    this.onReject({
      line: this.skippingFrom,
      rule: 'record_too_large',
      message: `the line is longer than ${this.maxRecordBytes} bytes`,
      raw: this.skippedHead,
    });
    this.skippingFrom = 0;
    this.skippedHead = '';
    this.advance(next, 1);
    return true;
  }

  private advance(next: number, lines: number): void {
    this.buf = this.buf.subarray(next);
    this.line += lines;
    this.resetRecordState();
  }

  private resetRecordState(): void {
    this.pos = 0;
    this.fields = 1;
    this.fieldStart = 0;
    this.inQuote = false;
    this.afterClose = false;
    this.bareQuote = false;
    this.malformed = false;
    this.newlines = 0;
    this.firstLineEnd = -1;
  }

  private rawText(raw: Buffer): string {
    const text = raw.toString('utf8');
    return text.length > this.maxRawChars ? `${text.slice(0, this.maxRawChars)}…` : text;
  }
}

/** The header could not be read: the whole file is unusable. */
export class CsvHeaderError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
    this.name = 'CsvHeaderError';
  }
}

/** Splits one record into its field values, unquoting; a bare quote in a field is text. */
export function splitFields(raw: Buffer, delimiter: number): string[] {
  const fields: string[] = [];
  let i = 0;
  const len = raw.length;
  for (;;) {
    if (raw[i] === QUOTE) {
      const parts: Buffer[] = [];
      let j = i + 1;
      for (;;) {
        const q = raw.indexOf(QUOTE, j);
        if (q < 0) {
          parts.push(raw.subarray(j));
          i = len;
          break;
        }
        parts.push(raw.subarray(j, q));
        if (raw[q + 1] === QUOTE) {
          parts.push(raw.subarray(q, q + 1));
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      // Anything between the closing quote and the delimiter is kept as text.
      const d = raw.indexOf(delimiter, i);
      const stop = d < 0 ? len : d;
      parts.push(raw.subarray(i, stop));
      fields.push(Buffer.concat(parts).toString('utf8'));
      i = stop;
    } else {
      const d = raw.indexOf(delimiter, i);
      const stop = d < 0 ? len : d;
      fields.push(raw.subarray(i, stop).toString('utf8'));
      i = stop;
    }
    if (i >= len) break;
    i++; // past the delimiter
    if (i === len) {
      fields.push('');
      break;
    }
  }
  return fields;
}

/** Writes fields as one CSV record, quoting each that needs it; empty stays unquoted (NULL). */
export function encodeFields(fields: string[], delimiter: number): Buffer {
  const d = String.fromCharCode(delimiter);
  const text = fields
    .map((f) =>
      f.includes('"') || f.includes(d) || f.includes('\n') || f.includes('\r') ? `"${f.replaceAll('"', '""')}"` : f,
    )
    .join(d);
  return Buffer.from(text, 'utf8');
}

/**
 * A well-formed record with a quote inside an unquoted field: that field is quoted (its quotes
 * doubled), every other field is kept byte for byte.
 */
function requoteBareQuotes(raw: Buffer, delimiter: number): Buffer {
  const parts: Buffer[] = [];
  const len = raw.length;
  let i = 0;
  for (;;) {
    let stop: number;
    if (raw[i] === QUOTE) {
      // A quoted field runs to its closing quote ("" is an escaped quote).
      stop = len;
      for (let j = i + 1; ;) {
        const q = raw.indexOf(QUOTE, j);
        if (q < 0) break;
        if (raw[q + 1] === QUOTE) {
          j = q + 2;
          continue;
        }
        stop = q + 1;
        break;
      }
      parts.push(raw.subarray(i, stop));
    } else {
      const d = raw.indexOf(delimiter, i);
      stop = d < 0 ? len : d;
      const field = raw.subarray(i, stop);
      parts.push(
        field.includes(QUOTE) ? Buffer.from(`"${field.toString('latin1').replaceAll('"', '""')}"`, 'latin1') : field,
      );
    }
    if (stop >= len) break;
    parts.push(raw.subarray(stop, stop + 1));
    i = stop + 1;
    if (i === len) break;
  }
  return Buffer.concat(parts);
}

/** Why PostgreSQL would refuse these bytes as UTF-8 text, naming the field; or undefined. */
function checkEncoding(raw: Buffer, delimiter: number, encoding: string | undefined): string | undefined {
  const nul = raw.indexOf(0);
  if (nul < 0 && isUtf8(raw)) return undefined;
  const at = nul >= 0 ? nul : firstInvalidUtf8(raw);
  // Delimiters inside quoted fields don't separate fields.
  let field = 1;
  let inQuote = false;
  let fieldStart = 0;
  let closedAt = -2;
  for (let i = 0; i < at; i++) {
    const c = raw[i];
    if (inQuote) {
      if (c === QUOTE) {
        inQuote = false;
        closedAt = i;
      }
    } else if (c === QUOTE && (i === fieldStart || i === closedAt + 1)) {
      inQuote = true;
    } else if (c === delimiter) {
      field++;
      fieldStart = i + 1;
    }
  }
  const byte = raw[at].toString(16).toUpperCase().padStart(2, '0');
  if (nul >= 0 && nul === at) return `NUL byte in field ${field} (byte ${at + 1} of the record)`;
  return encoding
    ? `bytes not valid in ${encoding} in field ${field} (character ${raw.subarray(0, at).toString('utf8').length + 1} of the record)`
    : `invalid UTF-8 byte 0x${byte} in field ${field} (byte ${at + 1} of the record): the file was read as UTF-8 (--encoding names another)`;
}

function firstInvalidUtf8(raw: Buffer): number {
  let i = 0;
  while (i < raw.length) {
    const b = raw[i];
    const size =
      b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (size === 0) return i;
    if (size > 1 && !isUtf8(raw.subarray(i, i + size))) return i;
    i += size;
  }
  return raw.length - 1;
}
