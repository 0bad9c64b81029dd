import { MAX_REJECT_RAW_CHARS, type SourceItem, type SourceReject, UNDECODABLE } from '../../reader-items.js';
import { SourceSyntaxError } from '../../source-syntax-error.js';
import { JsonRecordError, parseJsonRecord } from './json-record-parser.js';

export interface JsonReaderOptions {
  /** `json`: one document; `ndjson`: one object per line. */
  format: 'json' | 'ndjson';
  /**
   * `--records`: where the array of records is in a document (`data.items`, `/data/items` or
   * `$.data.items`). Default: the document itself when it is an array, else the first member
   * of the top-level object whose value is an array.
   */
  records?: string;
  /** Largest record accepted, in characters. (Default: 16 Mi) */
  maxRecordChars?: number;
}

const DEFAULT_MAX_RECORD_CHARS = 16 * 1024 * 1024;

/**
 * Reads records from JSON text: an array of objects (or one inside a document, see
 * `records`), or NDJSON. Each record is flattened by parseJsonRecord. A record that is not
 * valid JSON is rejected where its end can still be told (any NDJSON line; an array element
 * whose brackets balance) and reading goes on; otherwise the file is unreadable from there
 * and a SourceSyntaxError names the line.
 *
 * @example
 *   for await (const item of readJsonRecords(decodeText(bytes, 'utf-8'), { format: 'ndjson' })) …
 */
export async function* readJsonRecords(
  text: AsyncIterable<string>,
  options: JsonReaderOptions,
): AsyncGenerator<SourceItem> {
  const maxChars = options.maxRecordChars ?? DEFAULT_MAX_RECORD_CHARS;
  if (options.format === 'ndjson') {
    yield* readNdjson(text, maxChars);
    return;
  }
  const scanner = new JsonDocumentScanner(recordsPath(options.records), maxChars);
  for await (const chunk of text) {
    yield* scanner.push(chunk);
  }
  yield* scanner.finish();
}

async function* readNdjson(text: AsyncIterable<string>, maxChars: number): AsyncGenerator<SourceItem> {
  let rest = '';
  let line = 0;
  let skippingLong = false;
  for await (const chunk of text) {
    let buf = rest + chunk;
    let start = 0;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n', start)) {
      line++;
      if (skippingLong) skippingLong = false;
      else {
        const item = ndjsonLine(buf.slice(start, nl), line);
        if (item) yield item;
      }
      start = nl + 1;
    }
    buf = buf.slice(start);
    if (buf.length > maxChars && !skippingLong) {
      // Reject the line now and skip the rest of it, rather than hold it whole.
      yield tooLarge(line + 1, `line ${line + 1}`, buf, maxChars);
      skippingLong = true;
    }
    rest = skippingLong ? '' : buf;
  }
  if (!skippingLong && rest.trim() !== '') {
    const item = ndjsonLine(rest, line + 1);
    if (item) yield item;
  }
}

function ndjsonLine(text: string, line: number): SourceItem | undefined {
  const body = text.endsWith('\r') ? text.slice(0, -1) : text;
  if (body.trim() === '') return undefined;
  return recordOrReject(body, line, `line ${line}`);
}

/** One record's text: a record, or a reject saying why not. */
function recordOrReject(text: string, line: number, where: string): SourceItem {
  if (text.includes(UNDECODABLE)) {
    return reject(line, 'encoding', `${where}: bytes not valid in the file's encoding`, text);
  }
  try {
    return { kind: 'record', line, values: parseJsonRecord(text) };
  } catch (error) {
    if (!(error instanceof JsonRecordError)) throw error;
    const rule = /^a record must be a JSON object/.test(error.message) ? 'not_an_object' : 'malformed_json';
    const at = columnAt(text, error.at);
    const place = at.line > 1 ? `line ${at.line} of the record, column ${at.column}` : `column ${at.column}`;
    return reject(line, rule, `${where}: ${error.message} (${place})`, text);
  }
}

function reject(line: number, rule: string, message: string, raw: string): SourceReject {
  return {
    kind: 'reject',
    line,
    rule,
    message,
    raw: raw.slice(0, MAX_REJECT_RAW_CHARS).replaceAll(UNDECODABLE, '\uFFFD'),
  };
}

function tooLarge(line: number, where: string, text: string, maxChars: number): SourceReject {
  return reject(line, 'record_too_large', `${where}: the record is larger than ${maxChars} characters`, text);
}

function columnAt(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let nl = text.indexOf('\n'); nl >= 0 && nl < at; nl = text.indexOf('\n', nl + 1)) {
    line++;
    lineStart = nl + 1;
  }
  return { line, column: at - lineStart + 1 };
}

/** `data.items`, `/data/items`, `$.data.items` → ['data', 'items']; undefined → default. */
export function recordsPath(records: string | undefined): string[] | undefined {
  if (records === undefined) return undefined;
  const trimmed = records.trim().replace(/^\$\.?/, '');
  const parts = trimmed.startsWith('/') ? trimmed.slice(1).split('/') : trimmed.split('.');
  return parts.filter((p) => p !== '');
}

type Frame =
  /** In an object at `path`, before a member name (or its end). */
  | { kind: 'object'; path: string[]; afterValue: boolean }
  /** In the array of records. */
  | { kind: 'records'; afterValue: boolean };

/**
 * Walks a JSON document chunk by chunk down to its array of records, hands each element's
 * text to the record parser, and steps over everything else without keeping it.
 */
class JsonDocumentScanner {
  private buf = '';
  private pos = 0;
  /** Line of buf[pos], and where that line starts in buf. */
  private line = 1;
  private lineStart = 0;
  private stack: Frame[] = [];
  private started = false;
  private ended = false;
  private recordsFound = false;
  private records = 0;
  /** Stepping over a value (or collecting a record) that may span chunks. */
  private value: ValueScan | undefined;
  private valueIsRecord = false;
  private recordStartLine = 0;

  constructor(
    private readonly path: string[] | undefined,
    private readonly maxChars: number,
  ) {}

  *push(chunk: string): Generator<SourceItem> {
    this.buf = this.buf.slice(this.keepFrom()) + chunk;
    yield* this.scan(false);
  }

  *finish(): Generator<SourceItem> {
    yield* this.scan(true);
    if (!this.started) throw new SourceSyntaxError('the file holds no JSON document', 1, 1);
    if (!this.ended) {
      const open = this.value
        ? 'a value'
        : this.stack.at(-1)?.kind === 'records'
          ? 'the array of records'
          : 'an object';
      throw this.error(`the JSON ends inside ${open}: the file is truncated or a bracket is missing`);
    }
    if (!this.recordsFound) {
      throw new SourceSyntaxError(
        this.path
          ? `no array at "${this.path.join('.')}" in the JSON document`
          : 'the JSON document holds no array of records: name it with --records (e.g. --records data.items)',
      );
    }
  }

  /** Where the kept text starts: the record being collected, or the scan position. */
  private keepFrom(): number {
    const from = this.value && this.valueIsRecord ? this.value.start : this.pos;
    this.rebase(from);
    return from;
  }

  private rebase(from: number): void {
    this.pos -= from;
    this.lineStart -= from;
    if (this.value) {
      this.value.start -= from;
      this.value.at -= from;
    }
  }

  private *scan(final: boolean): Generator<SourceItem> {
    for (;;) {
      if (this.value) {
        const v = this.value;
        const end = v.scan(this.buf, final);
        if (end < 0) {
          if (this.valueIsRecord && this.buf.length - v.start > this.maxChars) {
            throw this.error(`record ${this.records + 1} is larger than ${this.maxChars} characters`);
          }
          if (!this.valueIsRecord) this.advanceTo(v.at);
          return;
        }
        this.value = undefined;
        if (this.valueIsRecord) {
          this.records++;
          const where = `record ${this.records} (line ${this.recordStartLine})`;
          yield recordOrReject(this.buf.slice(v.start, end), this.records, where);
        }
        this.advanceTo(end);
        this.top()!.afterValue = true;
        continue;
      }
      if (!this.skipSpace()) return;
      if (this.ended) throw this.error(`unexpected ${this.describe()} after the end of the JSON document`);
      const c = this.buf[this.pos];
      if (!this.started) {
        this.started = true;
        if (c === '[') {
          this.pos++;
          if (this.path && this.path.length > 0)
            throw this.error(`the document is an array: there is no "${this.path.join('.')}"`);
          this.enterRecords();
        } else if (c === '{') {
          this.pos++;
          this.stack.push({ kind: 'object', path: [], afterValue: false });
        } else {
          throw this.error(`a JSON document starts with [ or {, not ${this.describe()}`);
        }
        continue;
      }
      const frame = this.top()!;
      if (frame.kind === 'records') {
        if (c === ']') {
          this.pos++;
          this.leave();
          continue;
        }
        if (frame.afterValue) {
          if (c !== ',') throw this.error(`expected "," or "]" after record ${this.records}, found ${this.describe()}`);
          this.pos++;
          frame.afterValue = false;
          continue;
        }
        this.recordStartLine = this.line;
        this.startValue(true);
        continue;
      }
      // In an object: `}`, `,`, or `"name": value`.
      if (c === '}') {
        this.pos++;
        this.leave();
        continue;
      }
      if (frame.afterValue) {
        if (c !== ',') throw this.error(`expected "," or "}", found ${this.describe()}`);
        this.pos++;
        frame.afterValue = false;
        continue;
      }
      if (c !== '"') throw this.error(`expected a member name in double quotes, found ${this.describe()}`);
      const member = this.memberName(final);
      if (member === undefined) return;
      const { name, valueAt } = member;
      const path = [...frame.path, name];
      const v = this.buf[valueAt];
      this.advanceTo(valueAt);
      if (!this.recordsFound && this.leadsToRecords(path, v)) {
        this.pos++;
        if (v === '[') this.enterRecords();
        else this.stack.push({ kind: 'object', path, afterValue: false });
        frame.afterValue = true;
        continue;
      }
      this.startValue(false);
    }
  }

  /** Whether the member at path (whose value starts with v) is, or leads to, the records. */
  private leadsToRecords(path: string[], v: string): boolean {
    if (!this.path) return path.length === 1 && v === '[';
    if (path.some((p, i) => p !== this.path![i])) return false;
    if (path.length === this.path.length) {
      if (v !== '[') throw this.error(`"${this.path.join('.')}" is not an array`);
      return true;
    }
    return path.length < this.path.length && v === '{';
  }

  private enterRecords(): void {
    this.recordsFound = true;
    this.stack.push({ kind: 'records', afterValue: false });
  }

  private leave(): void {
    this.stack.pop();
    if (this.stack.length === 0) this.ended = true;
  }

  private top(): Frame | undefined {
    return this.stack.at(-1);
  }

  private startValue(isRecord: boolean): void {
    this.value = new ValueScan(this.pos, this.buf.charCodeAt(this.pos));
    this.valueIsRecord = isRecord;
  }

  /** A complete member name and where its value starts; undefined if it is cut by the chunk. */
  private memberName(final: boolean): { name: string; valueAt: number } | undefined {
    const b = this.buf;
    let end = this.pos + 1;
    for (;;) {
      end = b.indexOf('"', end);
      if (end < 0) {
        if (final) throw this.error('a member name never ends: the file is truncated');
        return undefined;
      }
      let slashes = 0;
      for (let i = end - 1; b[i] === '\\'; i--) slashes++;
      if (slashes % 2 === 0) break;
      end++;
    }
    let i = end + 1;
    while (i < b.length && /\s/.test(b[i])) i++;
    if (i >= b.length) {
      if (final) throw this.error('the JSON ends after a member name');
      return undefined;
    }
    if (b[i] !== ':') {
      this.advanceTo(i);
      throw this.error(`expected ":" after a member name, found ${this.describe()}`);
    }
    i++;
    while (i < b.length && /\s/.test(b[i])) i++;
    if (i >= b.length) {
      if (final) throw this.error('the JSON ends after a member name');
      return undefined;
    }
    let name: string;
    try {
      name = JSON.parse(b.slice(this.pos, end + 1)) as string;
    } catch {
      throw this.error(`a member name is not a valid JSON string: ${b.slice(this.pos, end + 1).slice(0, 40)}`);
    }
    return { name, valueAt: i };
  }

  /** Skips whitespace; false when the buffer ran out. */
  private skipSpace(): boolean {
    const b = this.buf;
    let i = this.pos;
    while (i < b.length) {
      const c = b.charCodeAt(i);
      if (c === 0x0a) {
        this.line++;
        this.lineStart = i + 1;
      } else if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0xfeff) {
        break;
      }
      i++;
    }
    this.pos = i;
    return i < b.length;
  }

  /** Moves pos forward, counting lines. */
  private advanceTo(to: number): void {
    const b = this.buf;
    for (let nl = b.indexOf('\n', this.pos); nl >= 0 && nl < to; nl = b.indexOf('\n', nl + 1)) {
      this.line++;
      this.lineStart = nl + 1;
    }
    this.pos = to;
  }

  private describe(): string {
    return this.pos < this.buf.length ? JSON.stringify(this.buf.slice(this.pos, this.pos + 12)) : 'the end of the file';
  }

  private error(message: string): SourceSyntaxError {
    return new SourceSyntaxError(message, this.line, this.pos - this.lineStart + 1);
  }
}

/**
 * Finds where one JSON value ends, across chunks, tracking only strings and bracket depth
 * (the record parser checks the rest). `start` is where the value begins; `at` how far the
 * scan got.
 */
class ValueScan {
  at: number;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private readonly scalar: boolean;

  constructor(
    public start: number,
    first: number,
  ) {
    this.at = start;
    this.scalar = first !== 0x7b && first !== 0x5b && first !== 0x22;
  }

  /** The index just past the value, or -1 if the buffer ends first. */
  scan(b: string, final: boolean): number {
    let i = this.at;
    if (this.scalar) {
      // A number, true, false or null: ends at a delimiter.
      while (i < b.length && !/[\s,\]}]/.test(b[i])) i++;
      this.at = i;
      return i < b.length || final ? i : -1;
    }
    while (i < b.length) {
      const c = b.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) {
          this.inString = false;
          if (this.depth === 0) return (this.at = i + 1);
        } else {
          // Jump to the next quote or backslash.
          const q = b.indexOf('"', i);
          const s = b.indexOf('\\', i);
          const next = q < 0 ? s : s < 0 ? q : Math.min(q, s);
          if (next < 0) {
            i = b.length;
            break;
          }
          i = next;
          continue;
        }
      } else if (c === 0x22) {
        this.inString = true;
      } else if (c === 0x7b || c === 0x5b) {
        this.depth++;
      } else if (c === 0x7d || c === 0x5d) {
        this.depth--;
        if (this.depth === 0) return (this.at = i + 1);
      }
      i++;
    }
    this.at = i;
    return -1;
  }
}
