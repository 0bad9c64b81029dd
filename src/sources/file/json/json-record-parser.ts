/**
 * Parses one complete JSON record (an object) into flat columns: a nested object's members
 * become `a.b.c` and the object itself `a`, as JSON text; arrays stay JSON text (a mapping
 * reads them with jsonb functions), numbers keep the digits the file wrote (never through a JavaScript number),
 * `true`/`false` become text and `null` SQL NULL.
 *
 * @example
 *   parseJsonRecord('{"sku":"A1","price":{"amount":10.50},"tags":["x"]}')
 *   // Map { 'sku' => 'A1', 'price.amount' => '10.50', 'price' => '{"amount":10.50}', 'tags' => '["x"]' }
 */
export function parseJsonRecord(text: string): Map<string, string | null> {
  const parser = new Parser(text);
  parser.skipSpace();
  if (text.charCodeAt(parser.pos) !== OPEN_BRACE) {
    throw new JsonRecordError(`a record must be a JSON object, not ${describe(text, parser.pos)}`, parser.pos);
  }
  const out = new Map<string, string | null>();
  parser.object('', out);
  parser.skipSpace();
  if (parser.pos < text.length) throw new JsonRecordError(`unexpected ${describe(text, parser.pos)}`, parser.pos);
  return out;
}

/** A record that is not valid JSON (or not an object); `at` is its offset in the record text. */
export class JsonRecordError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

class Parser {
  pos = 0;

  constructor(private readonly text: string) {}

  skipSpace(): void {
    const t = this.text;
    let c = t.charCodeAt(this.pos);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = t.charCodeAt(++this.pos);
  }

  /** An object at pos, its members written into out under prefix. */
  object(prefix: string, out: Map<string, string | null>): void {
    const start = this.pos;
    this.pos++; // {
    this.skipSpace();
    if (this.text.charCodeAt(this.pos) === CLOSE_BRACE) {
      this.pos++;
      // An empty object is a value of its own, not nothing.
      if (prefix !== '') this.put(out, prefix, '{}', start);
      return;
    }
    for (;;) {
      this.skipSpace();
      if (this.text.charCodeAt(this.pos) !== QUOTE) this.fail('a member name in double quotes');
      const keyAt = this.pos;
      const key = this.string();
      this.skipSpace();
      if (this.text.charCodeAt(this.pos) !== COLON) this.fail('":"');
      this.pos++;
      this.skipSpace();
      this.value(prefix === '' ? key : `${prefix}.${key}`, out, keyAt);
      this.skipSpace();
      const c = this.text.charCodeAt(this.pos);
      if (c === COMMA) {
        this.pos++;
        continue;
      }
      if (c === CLOSE_BRACE) {
        this.pos++;
        // A nested object is also a value of its own, as JSON text: a mapping may take it
        // whole into a jsonb column (and a jsonb column exported as JSON comes back whole).
        if (prefix !== '') this.put(out, prefix, this.text.slice(start, this.pos), start);
        return;
      }
      this.fail('"," or "}"');
    }
  }

  private value(name: string, out: Map<string, string | null>, keyAt: number): void {
    const t = this.text;
    const c = t.charCodeAt(this.pos);
    if (c === OPEN_BRACE) return this.object(name, out);
    if (c === OPEN_BRACKET) {
      const start = this.pos;
      this.skipComposite();
      return this.put(out, name, t.slice(start, this.pos), keyAt);
    }
    if (c === QUOTE) return this.put(out, name, this.string(), keyAt);
    if (t.startsWith('true', this.pos)) {
      this.pos += 4;
      return this.put(out, name, 'true', keyAt);
    }
    if (t.startsWith('false', this.pos)) {
      this.pos += 5;
      return this.put(out, name, 'false', keyAt);
    }
    if (t.startsWith('null', this.pos)) {
      this.pos += 4;
      return this.put(out, name, null, keyAt);
    }
    return this.put(out, name, this.number(), keyAt);
  }

  private put(out: Map<string, string | null>, name: string, value: string | null, at: number): void {
    // `{"a.b":1,"a":{"b":2}}` or a repeated key: which one to keep would be a guess.
    if (out.has(name)) throw new JsonRecordError(`the record has "${name}" twice`, at);
    out.set(name, value);
  }

  /** Steps over an array or object, checking its syntax, without building it. */
  private skipComposite(): void {
    const t = this.text;
    const close = t.charCodeAt(this.pos) === OPEN_BRACKET ? CLOSE_BRACKET : CLOSE_BRACE;
    this.pos++;
    this.skipSpace();
    if (t.charCodeAt(this.pos) === close) {
      this.pos++;
      return;
    }
    for (;;) {
      this.skipSpace();
      if (close === CLOSE_BRACE) {
        if (t.charCodeAt(this.pos) !== QUOTE) this.fail('a member name in double quotes');
        this.string();
        this.skipSpace();
        if (t.charCodeAt(this.pos) !== COLON) this.fail('":"');
        this.pos++;
        this.skipSpace();
      }
      this.skipValue();
      this.skipSpace();
      const c = t.charCodeAt(this.pos);
      if (c === COMMA) {
        this.pos++;
        continue;
      }
      if (c === close) {
        this.pos++;
        return;
      }
      this.fail(close === CLOSE_BRACKET ? '"," or "]"' : '"," or "}"');
    }
  }

  private skipValue(): void {
    const t = this.text;
    const c = t.charCodeAt(this.pos);
    if (c === OPEN_BRACE || c === OPEN_BRACKET) return this.skipComposite();
    if (c === QUOTE) {
      this.string();
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (t.startsWith(word, this.pos)) {
        this.pos += word.length;
        return;
      }
    }
    this.number();
  }

  /** A string at pos, decoded. */
  string(): string {
    const t = this.text;
    const start = ++this.pos;
    let end = t.indexOf('"', start);
    let backslash = t.indexOf('\\', start);
    if (end < 0) this.failAt('a closing quote', t.length);
    if (backslash < 0 || backslash > end) {
      this.pos = end + 1;
      return t.slice(start, end);
    }
    let out = t.slice(start, backslash);
    let i = backslash;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === QUOTE) break;
      if (Number.isNaN(c)) this.failAt('a closing quote', i);
      if (c !== BACKSLASH) {
        // Copy up to the next quote or backslash in one piece.
        end = t.indexOf('"', i);
        backslash = t.indexOf('\\', i);
        const stop = backslash >= 0 && backslash < end ? backslash : end;
        if (stop < 0) this.failAt('a closing quote', t.length);
        out += t.slice(i, stop);
        i = stop;
        continue;
      }
      const e = t[i + 1];
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(t.slice(i + 2, i + 6), 16));
        i += 6;
      } else {
        this.failAt('a valid escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)', i);
      }
    }
    this.pos = i + 1;
    return out;
  }

  /** A number at pos, as written. */
  private number(): string {
    const t = this.text;
    const start = this.pos;
    let i = start;
    if (t.charCodeAt(i) === 0x2d) i++;
    const intStart = i;
    while (isDigit(t.charCodeAt(i))) i++;
    if (i === intStart || (t.charCodeAt(intStart) === 0x30 && i - intStart > 1)) this.fail('a value');
    if (t.charCodeAt(i) === 0x2e) {
      const fracStart = ++i;
      while (isDigit(t.charCodeAt(i))) i++;
      if (i === fracStart) this.failAt('a digit after "."', i);
    }
    if (t.charCodeAt(i) === 0x65 || t.charCodeAt(i) === 0x45) {
      i++;
      if (t.charCodeAt(i) === 0x2b || t.charCodeAt(i) === 0x2d) i++;
      const expStart = i;
      while (isDigit(t.charCodeAt(i))) i++;
      if (i === expStart) this.failAt('a digit in the exponent', i);
    }
    this.pos = i;
    return t.slice(start, i);
  }

  private fail(expected: string): never {
    return this.failAt(expected, this.pos);
  }

  private failAt(expected: string, at: number): never {
    throw new JsonRecordError(`expected ${expected}, found ${describe(this.text, at)}`, at);
  }
}

const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function describe(text: string, at: number): string {
  if (at >= text.length) return 'the end of the record';
  return JSON.stringify(text.slice(at, at + 12));
}
