import { SaxesParser, type SaxesTagPlain } from 'saxes';

import { PgferryError } from '../../../errors.js';
import { MAX_REJECT_RAW_CHARS, type SourceItem, type SourceReject, UNDECODABLE } from '../../reader-items.js';
import { SourceSyntaxError } from '../../source-syntax-error.js';

export interface XmlReaderOptions {
  /** `--records`: path of the repeating element, e.g. `/catalog/item` (absolute from the root) or `item` (any element of that name). Matches qualified names as written (`g:item`) or local names. Default: the root element's children, which must all share one name. */
  records?: string;
}

/**
 * Reads an XML file as records, streaming: memory holds the record being read (and those the
 * current chunk completed), never the document.
 *
 * The records are the elements `--records` names (elements around and between them are
 * skipped), else the root's children, which must then share one name. Records do not nest: an
 * element inside a record is a column even if its name matches.
 *
 * Each record element becomes one record whose columns are:
 * - its attributes, as `@name`;
 * - its child elements, by name, nested ones flattened with dots (`dimensions.width`), their
 *   attributes as `price.@currency`;
 * - a child repeated within the record, as one column holding a JSON array (`["a","b"]`, or
 *   objects with flattened keys for elements that have attributes or children);
 * - text directly inside the record element that also has child elements, as `#text`.
 *
 * Names are the qualified names as written (`g:id`), `_xHHHH_` escapes decoded; `xmlns`
 * declarations are not columns. A leaf's text is kept exactly (`<a/>` is ''); an absent element
 * is absent from the Map (NULL). A record holding bytes that were not valid in the file's
 * encoding is rejected; XML that is not well-formed throws SourceSyntaxError.
 *
 * @example
 *   // <catalog><item id="1"><name>Lamp</name><price currency="EUR">12.50</price></item></catalog>
 *   for await (const item of readXmlRecords(decodeText(stream, 'utf-8'))) …
 *   // { kind: 'record', line: 1, values: Map { '@id' => '1', 'name' => 'Lamp',
 *   //   'price' => '12.50', 'price.@currency' => 'EUR' } }
 */
export async function* readXmlRecords(
  text: AsyncIterable<string>,
  options: XmlReaderOptions = {},
): AsyncGenerator<SourceItem> {
  const reader = new XmlRecordReader(options.records);
  for await (const chunk of text) {
    if (chunk.length === 0) continue;
    const failure = reader.write(chunk);
    // Records completed before an error are still handed on, whatever the chunking.
    for (const item of reader.take()) yield item;
    if (failure) throw failure;
  }
  const failure = reader.close();
  for (const item of reader.take()) yield item;
  if (failure) throw failure;
}

/** An element inside a record, kept until the record ends. */
interface XNode {
  /** The element's name, `_xHHHH_` escapes decoded. */
  name: string;
  /** saxes' attribute object (names as written), or undefined when there are none. */
  attrs: Record<string, string> | undefined;
  /** Its direct text, pieces concatenated (entities and CDATA decoded). */
  text: string;
  children: XNode[] | undefined;
}

const REPLACEMENT = '\uFFFD';

class XmlRecordReader {
  private readonly sax = new SaxesParser<{ xmlns: false; position: true }>({ xmlns: false, position: true });
  private readonly matches: ((path: readonly string[]) => boolean) | undefined;
  private out: SourceItem[] = [];

  /** Names of the open elements outside a record (the record's ancestors). */
  private readonly path: string[] = [];
  /** Line where each open element starts, for "unclosed tag" messages. */
  private readonly openLines: number[] = [];
  /** Open elements of the current record, the record element first; empty between records. */
  private readonly nodes: XNode[] = [];

  private records = 0;
  private recordStart = -1;
  private recordLine = 0;
  /** Auto-detection: the name of the root's first child, and how many of it were seen. */
  private autoName: string | undefined;
  private autoCount = 0;

  /**
   * Where the next markup's `<` is (offset in the text, and line): right after the last event,
   * or, after text, the `<` saxes just read. saxes reports no start offset for a tag.
   */
  private ltOffset = 0;
  private ltLine = 1;
  /** Offset where the last record was emitted, to take it back if its close tag mismatches. */
  private emittedAt = -1;
  private lastClosedName = '';
  private lastClosedLine = 0;

  /** Text fed so far, in UTF-16 units (saxes' `position` counts the same way). */
  private fed = 0;
  /** Chunks from the earliest offset a reject may still quote, and where the first starts. */
  private readonly chunks: string[] = [];
  private chunksStart = 0;
  /** Offsets of UNDECODABLE not yet passed. */
  private undecodable: number[] = [];
  /** The last code unit fed, to tell a sentinel from the low half of a split surrogate pair. */
  private lastCode = 0;

  constructor(records: string | undefined) {
    this.matches = records === undefined ? undefined : pathMatcher(records);
    const sax = this.sax;
    sax.on('text', (text) => {
      const node = this.nodes[this.nodes.length - 1];
      if (node !== undefined) node.text += text;
      // saxes reports text when it reads the next `<`.
      this.ltOffset = sax.position - 1;
      this.ltLine = sax.line;
    });
    sax.on('cdata', (cdata) => {
      const node = this.nodes[this.nodes.length - 1];
      if (node !== undefined) node.text += cdata;
      this.markupEnded();
    });
    sax.on('comment', () => this.markupEnded());
    sax.on('processinginstruction', () => this.markupEnded());
    sax.on('opentag', (tag) => this.open(tag));
    sax.on('closetag', (tag) => this.closed(tag));
    // Few handlers: saxes adds a property per handler, and with eight its parser object falls
    // into V8's slow dictionary mode (parsing 5x slower). None for errors: saxes then throws at
    // the first one, and write() turns it into ours.
  }

  /** Feeds a chunk; returns the error that ends the file, if any. */
  write(chunk: string): SourceSyntaxError | undefined {
    chunk = this.markUndecodable(chunk);
    this.chunks.push(chunk);
    this.fed += chunk.length;
    try {
      this.sax.write(chunk);
    } catch (error) {
      return this.syntaxError(error);
    }
    this.forgetPassed();
    return undefined;
  }

  close(): SourceSyntaxError | undefined {
    try {
      this.sax.close();
    } catch (error) {
      return this.syntaxError(error);
    }
    return undefined;
  }

  /** The items completed since the last call. */
  take(): SourceItem[] {
    const items = this.out;
    if (items.length) this.out = [];
    return items;
  }

  private markupEnded(): void {
    this.ltOffset = this.sax.position;
    this.ltLine = this.sax.line;
  }

  private open(tag: SaxesTagPlain): void {
    const start = this.ltOffset;
    const line = this.ltLine;
    this.markupEnded();
    this.openLines.push(line);
    const attrs = hasKeys(tag.attributes) ? tag.attributes : undefined;
    const parent = this.nodes[this.nodes.length - 1];
    if (parent !== undefined) {
      const node: XNode = { name: decodeXmlName(tag.name), attrs, text: '', children: undefined };
      if (parent.children === undefined) parent.children = [node];
      else parent.children.push(node);
      this.nodes.push(node);
      return;
    }
    const path = this.path;
    path.push(tag.name);
    if (this.matches ? this.matches(path) : path.length === 2 && this.autoDetected(path, line)) {
      this.nodes.push({ name: '', attrs, text: '', children: undefined });
      this.recordStart = start;
      this.recordLine = line;
    }
  }

  /** Whether a child of the root is a record: it is if it has the name of the first one. */
  private autoDetected(path: readonly string[], line: number): boolean {
    const name = path[1];
    if (this.autoName === undefined) this.autoName = name;
    if (name === this.autoName) {
      this.autoCount++;
      return true;
    }
    const [root, first] = [path[0], this.autoName];
    // A lone first element is likely a header; a run of them, the records.
    const likely = this.autoCount === 1 ? name : first;
    const seen = this.autoCount === 1 ? `<${first}>` : `${this.autoCount} <${first}>`;
    throw new SourceSyntaxError(
      `cannot tell which elements are the records: <${root}> holds ${seen} then <${name}> (line ${line}); ` +
        `name them with --records, e.g. --records /${root}/${likely}`,
      line,
    );
  }

  private closed(tag: SaxesTagPlain): void {
    this.markupEnded();
    this.lastClosedName = tag.name;
    this.lastClosedLine = this.openLines.pop() ?? 0;
    const nodes = this.nodes;
    if (nodes.length > 1) {
      nodes.pop();
    } else if (nodes.length === 1) {
      this.emit(nodes[0]);
      nodes.length = 0;
      this.recordStart = -1;
      this.path.pop();
    } else {
      this.path.pop();
    }
  }

  private emit(record: XNode): void {
    const ordinal = ++this.records;
    const end = this.sax.position;
    this.emittedAt = end;
    if (this.undecodable.length > 0 && this.takeUndecodable(this.recordStart, end)) {
      const reject: SourceReject = {
        kind: 'reject',
        line: ordinal,
        rule: 'encoding',
        message: `record ${ordinal} (line ${this.recordLine}): bytes not valid in the file's encoding`,
        raw: this.textBetween(this.recordStart, end),
      };
      this.out.push(reject);
      return;
    }
    const values = new Map<string, string | null>();
    flattenRecord(record, values);
    this.out.push({ kind: 'record', line: ordinal, values });
  }

  /** Turns saxes' error into the one the load reports; any other error is rethrown. */
  private syntaxError(error: unknown): SourceSyntaxError {
    if (error instanceof SourceSyntaxError) return error;
    const saxesMessage = error instanceof Error && error.constructor === Error && /^\d+:\d+: /.exec(error.message);
    if (!saxesMessage) throw error;
    const sax = this.sax;
    const what = (error as Error).message.slice(saxesMessage[0].length).replace(/\.$/, '');
    let detail: string;
    if (what === 'unexpected close tag') {
      // saxes reports this after closing the element: a record ended by it is taken back.
      if (this.emittedAt === sax.position && this.out.length > 0) {
        this.out.pop();
        this.records--;
      }
      detail = `closing tag does not match <${this.lastClosedName}> (opened at line ${this.lastClosedLine})`;
    } else if (what.startsWith('unclosed tag: ')) {
      // saxes reports the innermost first, as openLines holds it last.
      const line = this.openLines[this.openLines.length - 1];
      detail = `unclosed tag <${what.slice(14)}>${line ? ` (opened at line ${line})` : ''}`;
    } else if (what.startsWith('unmatched closing tag: ')) {
      detail = `closing tag </${what.slice(23)}> has no opening tag`;
    } else {
      detail = SAXES_MESSAGES[what] ?? what;
    }
    return new SourceSyntaxError(`XML is not well-formed: ${detail}`, sax.line, sax.column);
  }

  /**
   * Replaces each UNDECODABLE with U+FFFD, which saxes accepts anywhere, noting its offset: the
   * record around it is rejected. A U+DFFF after a high surrogate is half of a real character.
   */
  private markUndecodable(chunk: string): string {
    let at = chunk.indexOf(UNDECODABLE);
    if (at >= 0) {
      let out = '';
      let from = 0;
      for (; at >= 0; at = chunk.indexOf(UNDECODABLE, at + 1)) {
        const before = at > 0 ? chunk.charCodeAt(at - 1) : this.lastCode;
        if (before >= 0xd800 && before <= 0xdbff) continue;
        this.undecodable.push(this.fed + at);
        out += chunk.slice(from, at) + REPLACEMENT;
        from = at + 1;
      }
      if (from > 0) chunk = out + chunk.slice(from);
    }
    this.lastCode = chunk.charCodeAt(chunk.length - 1);
    return chunk;
  }

  /** Whether an UNDECODABLE lies in [start, end); forgets those before end. */
  private takeUndecodable(start: number, end: number): boolean {
    const offsets = this.undecodable;
    const found = offsets.some((offset) => offset >= start && offset < end);
    this.undecodable = offsets.filter((offset) => offset >= end);
    return found;
  }

  /** Drops the chunks and offsets no reject can need: those before the current or next record. */
  private forgetPassed(): void {
    const keepFrom = this.recordStart >= 0 ? this.recordStart : this.ltOffset;
    const chunks = this.chunks;
    while (chunks.length > 0 && this.chunksStart + chunks[0].length <= keepFrom) {
      this.chunksStart += chunks[0].length;
      chunks.shift();
    }
    if (this.undecodable.length > 0) this.undecodable = this.undecodable.filter((offset) => offset >= keepFrom);
  }

  /** The file's text in [start, end), cut to MAX_REJECT_RAW_CHARS. */
  private textBetween(start: number, end: number): string {
    let text = '';
    let offset = this.chunksStart;
    for (const chunk of this.chunks) {
      const next = offset + chunk.length;
      if (next > start && offset < end) text += chunk.slice(Math.max(0, start - offset), end - offset);
      offset = next;
      if (offset >= end || text.length >= MAX_REJECT_RAW_CHARS) break;
    }
    return cutText(text, MAX_REJECT_RAW_CHARS);
  }
}

const SAXES_MESSAGES: Record<string, string> = {
  'document must contain a root element': 'the file holds no element',
  'text data outside of root node': 'text outside the root element',
  'documents may contain only one root': 'more than one root element',
  'disallowed character': 'a character XML does not allow',
  'unexpected end': 'unexpected end of file',
  'undefined entity': 'undefined entity (only &lt; &gt; &amp; &quot; &apos; and character references are read)',
};

function hasKeys(object: object): boolean {
  for (const _ in object) return true;
  return false;
}

function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  // Never leave half a surrogate pair at the end.
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

// ---------------------------------------------------------------------------------------------
// Records path
// ---------------------------------------------------------------------------------------------

/**
 * A test for `--records`: `/a/b` matches the element at exactly that path, `b` any element
 * named b, `a/b` any b whose parent is an a. A step matches the name as written, its local
 * part (`item` matches `g:item`) or its decoded form; `*` matches any name.
 */
function pathMatcher(records: string): (path: readonly string[]) => boolean {
  const absolute = records.startsWith('/');
  const steps = (absolute ? records.slice(1) : records).split('/');
  if (steps.some((step) => step.trim() === '')) {
    throw new PgferryError(`--records ${JSON.stringify(records)} is not an element path`, {
      hint: 'write the path from the root (--records /catalog/item) or an element name (--records item)',
    });
  }
  return (path) => {
    const offset = path.length - steps.length;
    if (absolute ? offset !== 0 : offset < 0) return false;
    for (let i = 0; i < steps.length; i++) if (!stepMatches(steps[i], path[offset + i])) return false;
    return true;
  };
}

function stepMatches(step: string, name: string): boolean {
  if (step === name || step === '*') return true;
  const colon = name.indexOf(':');
  if (colon >= 0 && !step.includes(':') && name.slice(colon + 1) === step) return true;
  return name.includes('_x') && decodeXmlName(name) === step;
}

// ---------------------------------------------------------------------------------------------
// Flattening
// ---------------------------------------------------------------------------------------------

/** Where columns go: the record's Map, or an object inside a JSON array. */
type Target = Map<string, string | null> | Record<string, unknown>;

function put(target: Target, key: string, value: string | unknown[]): void {
  if (target instanceof Map) target.set(key, typeof value === 'string' ? value : JSON.stringify(value));
  else target[key] = value;
}

function flattenRecord(record: XNode, values: Map<string, string | null>): void {
  flattenContent(record, '', values);
  // The record element is there by definition: only text that says something is a column.
  if (isNotBlank(record.text)) values.set('#text', record.children === undefined ? record.text : record.text.trim());
}

/**
 * The value an element gives its own path: a plain leaf's text, exactly; else its text only if
 * not blank (trimmed when it sits between child elements: mixed content).
 */
function ownText(node: XNode): string | undefined {
  if (node.children === undefined) {
    if (node.attrs === undefined || isNotBlank(node.text)) return node.text;
    return undefined;
  }
  return isNotBlank(node.text) ? node.text.trim() : undefined;
}

/** Puts an element's attributes and children under `prefix`. */
function flattenContent(node: XNode, prefix: string, target: Target): void {
  const attrs = node.attrs;
  if (attrs !== undefined) {
    for (const name in attrs) {
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      put(target, `${prefix}@${decodeXmlName(name)}`, attrs[name]);
    }
  }
  const children = node.children;
  if (children === undefined) return;
  if (!hasRepeats(children)) {
    for (const child of children) flattenElement(child, prefix + child.name, target);
    return;
  }
  const byName = new Map<string, XNode[]>();
  for (const child of children) {
    const same = byName.get(child.name);
    if (same === undefined) byName.set(child.name, [child]);
    else same.push(child);
  }
  for (const [name, same] of byName) {
    if (same.length === 1) flattenElement(same[0], prefix + name, target);
    else put(target, prefix + name, same.map(jsonItem));
  }
}

/** Whether two children share a name (most records have none: no grouping then). */
function hasRepeats(children: XNode[]): boolean {
  const count = children.length;
  if (count > 16) return new Set(children.map((child) => child.name)).size < count;
  for (let i = 1; i < count; i++) {
    const name = children[i].name;
    for (let j = 0; j < i; j++) if (children[j].name === name) return true;
  }
  return false;
}

function flattenElement(node: XNode, key: string, target: Target): void {
  const own = ownText(node);
  if (own !== undefined) put(target, key, own);
  if (node.attrs !== undefined || node.children !== undefined) flattenContent(node, `${key}.`, target);
}

/** One element of a repeated child: a plain leaf as its text, others as an object. */
function jsonItem(node: XNode): unknown {
  if (node.attrs === undefined && node.children === undefined) return node.text;
  // A null prototype: an element may be named __proto__.
  const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  flattenContent(node, '', object);
  const own = ownText(node);
  if (own !== undefined) object['#text'] = own;
  return object;
}

/** Whether text holds anything but XML white space (space, tab, CR, LF). */
function isNotBlank(text: string): boolean {
  return text.length > 0 && /[^ \t\r\n]/.test(text);
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

// XML 1.0 (fifth edition) name characters; `:` left out, as namespaces give it a meaning.
const NAME_START =
  'A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
// Combining marks first: after another character, lint takes them for one combined character.
const NAME_CHAR = `\\u0300-\\u036F${NAME_START}\\-.0-9\\u00B7\\u203F\\u2040`;
const NAME_START_CHAR_RE = new RegExp(`^[${NAME_START}]`, 'u');
/**
 * What encodeXmlName escapes: characters not allowed in a name, and a `_` that the decoder
 * would take for an escape's start — `_x` and 4 or 8 hex digits followed by `_` or by a
 * character that becomes an escape (whose `_` would close it).
 */
const ENCODED_RE = new RegExp(`_(?=x(?:[0-9A-Fa-f]{4}|[0-9A-Fa-f]{8})(?:_|[^${NAME_CHAR}]))|[^${NAME_CHAR}]`, 'gu');
const ESCAPE_RE = /_x(?:([0-9A-Fa-f]{8})|([0-9A-Fa-f]{4}))_/g;

function escapeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  const hex = code.toString(16).toUpperCase();
  return `_x${hex.padStart(code > 0xffff ? 8 : 4, '0')}_`;
}

/**
 * Decodes the `_xHHHH_` (or `_xHHHHHHHH_`) escapes of an element name written by
 * XmlConvert.EncodeName or by encodeXmlName; `_` alone is the empty name.
 *
 * @example
 *   decodeXmlName('Item_x0020_Code') // 'Item Code'
 */
export function decodeXmlName(name: string): string {
  if (name.indexOf('_x') < 0) return name === '_' ? '' : name;
  return name.replace(ESCAPE_RE, (escape, long: string | undefined, short: string | undefined) => {
    if (short !== undefined) return String.fromCharCode(parseInt(short, 16));
    const code = parseInt(long ?? '', 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : escape;
  });
}

/**
 * An XML element name for any string, decodeXmlName's inverse: characters not allowed in a
 * name (and `:`, a namespace prefix's mark) become `_xHHHH_`, as does a first character that
 * may not start a name and a `_` that would read as an escape. The empty name is `_`.
 *
 * @example
 *   encodeXmlName('Item Code') // 'Item_x0020_Code'
 *   encodeXmlName('2nd')       // '_x0032_nd'
 */
export function encodeXmlName(name: string): string {
  if (name === '') return '_';
  if (name === '_') return '_x005F_';
  const out = name.replace(ENCODED_RE, escapeChar);
  // A name character that may not come first (a digit, `-`, `.`) is left by ENCODED_RE.
  if (out[0] === name[0] && !NAME_START_CHAR_RE.test(name)) {
    const first = String.fromCodePoint(name.codePointAt(0) ?? 0);
    return escapeChar(first) + out.slice(first.length);
  }
  return out;
}
