import { Buffer } from 'node:buffer';

import { MAX_REJECT_RAW_CHARS, type SourceItem, type SourceReject, UNDECODABLE } from '../../reader-items.js';
import { SourceSyntaxError } from '../../source-syntax-error.js';

export interface SqlDumpReaderOptions {
  /**
   * `--table`: the table whose rows to read (`name` or `schema.name`; a quoted part compares
   * exactly, an unquoted one case-insensitively). Default: the dump's only table with rows.
   */
  table?: string;
}

/**
 * Reads the rows of `INSERT INTO … VALUES (…), (…);` statements from a SQL dump (mysqldump,
 * `pg_dump --inserts` / `--column-inserts`, pgferry's own export), one tuple at a time. The
 * SQL is tokenized, never run: every other statement and comment is skipped (respecting
 * strings, quoted identifiers and dollar quotes), and so are `COPY … FROM stdin` data blocks.
 *
 * Each tuple of the chosen table is a record numbered by its ordinal (1-based). Its columns
 * are the INSERT's column list, else the table's earlier `CREATE TABLE`, else col_1…col_N.
 * A tuple holding anything but literals (strings, numbers, NULL, TRUE, FALSE) is rejected
 * with rule `not_a_literal`, one whose value count differs from its column count with
 * `column_count`, and one holding bytes not valid in the file's encoding with `encoding`.
 *
 * Strings follow the dump's dialect: MySQL (backslash escapes, `#` comments, `0x…`, `X'…'`
 * and `_binary '…'` as `\x<hex>`) when the dump says so before or in its first INSERT
 * (a `-- MySQL dump` header, `/*!` comments, backticks, `ENGINE=`), else PostgreSQL (`''`,
 * `E'…'`, `standard_conforming_strings`, `$tag$…$tag$`, `::type` casts after a literal).
 *
 * @example
 *   for await (const item of readSqlDumpRecords(decodeText(bytes, 'utf-8'), { table: 'products' })) …
 */
export async function* readSqlDumpRecords(
  text: AsyncIterable<string>,
  options: SqlDumpReaderOptions = {},
): AsyncGenerator<SourceItem> {
  const scanner = new SqlDumpScanner(options.table === undefined ? undefined : parseTableName(options.table));
  for await (const chunk of text) {
    yield* scanner.push(chunk);
  }
  yield* scanner.finish();
}

/** A helper's answer when the text ends before what it reads does: wait for more. */
const NEED = -1;
/** readValue's answer for a value that is not a literal. */
const NOT_LITERAL = -2;
/** nlNext when the buffer holds no further line break. */
const NONE = Number.MAX_SAFE_INTEGER;

// What the scanner expects next.
const TOP = 0; // a statement
const TUPLE = 1; // a tuple of the INSERT being read
const AFTER_TUPLE = 2; // `,`, `;` or the rest of the INSERT statement
const COPY_DATA = 3; // the lines of a COPY … FROM stdin block, up to `\.`

// How a quoted string treats backslashes.
const PLAIN = 0; // none: only a doubled quote escapes one
const MYSQL = 1; // MySQL: \0 \' \" \b \n \r \t \Z \\, \% and \_ keep their backslash
const ESCAPE = 2; // PostgreSQL E'…': \n \t \\ \' \xHH \ooo \uXXXX …

const NL = 10;
const CR = 13;
const QUOTE = 39;
const DQUOTE = 34;
const BACKTICK = 96;
const BACKSLASH = 92;
const LPAREN = 40;
const RPAREN = 41;
const LBRACKET = 91;
const RBRACKET = 93;
const COMMA = 44;
const SEMI = 59;
const DOLLAR = 36;
const DASH = 45;
const PLUS = 43;
const DOT = 46;
const SLASH = 47;
const STAR = 42;
const HASH = 35;
const COLON = 58;

const INSERT_MODIFIERS = new Set(['INTO', 'IGNORE', 'LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY']);
const CREATE_MODIFIERS = new Set(['TEMPORARY', 'TEMP', 'UNLOGGED', 'GLOBAL', 'LOCAL', 'OR', 'REPLACE']);
/** Lines of a CREATE TABLE that define no column (MySQL adds KEY, INDEX, FULLTEXT, SPATIAL). */
const TABLE_CONSTRAINTS = new Set(['PRIMARY', 'UNIQUE', 'CONSTRAINT', 'FOREIGN', 'CHECK', 'EXCLUDE', 'LIKE']);
const MYSQL_TABLE_INDEXES = new Set(['KEY', 'INDEX', 'FULLTEXT', 'SPATIAL']);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** One part of a table name. */
interface Ident {
  text: string;
  quoted: boolean;
}

/** A table an INSERT writes to, as first met under one spelling of its name. */
interface TableInfo {
  name: Ident[];
  /** Its rows are read; else they are skipped. */
  chosen: boolean;
  /** Column names from its CREATE TABLE, when the dump has one before its rows. */
  created: string[] | undefined;
  /** col_1…col_N, when neither a column list nor a CREATE TABLE names its columns. */
  fallback: string[] | undefined;
}

/**
 * The tokenizer. It keeps only the text not yet consumed: each step reads one unit (a
 * statement other than an INSERT, an INSERT's header, one tuple, a run of COPY lines) from
 * `pos`, and when the buffer ends inside it, stops and rereads it once the buffer has grown to
 * twice what it held (so a long unit costs linear time, not quadratic).
 */
class SqlDumpScanner {
  private buf = '';
  private pos = 0;
  private eof = false;
  private started = false;
  private needLen = 0;
  private state = TOP;

  // Lines: `line` is the line of buf[mark]; lineStart is where that line starts.
  private line = 1;
  private mark = 0;
  private lineStart = 0;
  private nlNext = -1;

  // What the text would end inside, if it ended at the buffer's end: for the error at EOF.
  private openWhat: string | null = null;
  private openAt = 0;
  private openLine = 0;

  // Dialect.
  private mysql = false;
  private dialectFixed = false;
  private standardStrings = true;
  private delim = ';';

  // Scratch results of the helpers.
  private sval = '';
  private vval: string | null = null;
  private ident: Ident = { text: '', quoted: false };
  private qname: Ident[] = [];
  private badBytes = false;
  private bad: string | undefined;
  private readonly values: (string | null)[] = [];
  private mayHaveUndecodable = false;
  private item: SourceItem | undefined;

  // Tables.
  private readonly tables = new Map<string, TableInfo>();
  private readonly creates: { name: Ident[]; columns: string[] }[] = [];
  private chosen: Ident[] | undefined;
  private readonly withRows: Ident[][] = [];
  private readonly withCopy: Ident[][] = [];

  // The INSERT being read.
  private cur: TableInfo | undefined;
  private curColumns: string[] | undefined;
  private curFromList = false;
  private stmtLine = 0;
  private ordinal = 0;

  constructor(private readonly wanted: Ident[] | undefined) {}

  *push(chunk: string): Generator<SourceItem> {
    if (chunk === '') return;
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (chunk.includes(UNDECODABLE)) this.mayHaveUndecodable = true;
    this.buf += chunk;
    if (this.nlNext === NONE) this.nlNext = -1;
    if (this.buf.length - this.pos < this.needLen) return;
    yield* this.scan();
  }

  *finish(): Generator<SourceItem> {
    this.eof = true;
    yield* this.scan();
    this.requireRows();
  }

  private *scan(): Generator<SourceItem> {
    for (;;) {
      const more = this.step();
      if (this.item !== undefined) {
        const item = this.item;
        this.item = undefined;
        yield item;
      }
      if (!more) break;
    }
    if (this.eof && this.openWhat !== null) throw this.endError();
    this.needLen = (this.buf.length - this.pos) * 2;
    this.trim();
  }

  /** Reads one unit; false when the buffer ends first. */
  private step(): boolean {
    switch (this.state) {
      case TOP:
        return this.topStep();
      case TUPLE:
        return this.tupleStep();
      case AFTER_TUPLE:
        return this.afterTupleStep();
      default:
        return this.copyStep();
    }
  }

  /** Drops the consumed text. */
  private trim(): void {
    const p = this.pos;
    if (p === 0) return;
    this.lineAt(p);
    this.buf = this.buf.slice(p);
    this.pos = 0;
    this.mark -= p;
    this.lineStart -= p;
    if (this.nlNext !== NONE && this.nlNext >= 0) this.nlNext -= p;
  }

  /** The line of buf[p]. */
  private lineAt(p: number): number {
    const buf = this.buf;
    if (p < this.mark) {
      let n = 0;
      for (let i = buf.indexOf('\n', p); i !== -1 && i < this.mark; i = buf.indexOf('\n', i + 1)) n++;
      return this.line - n;
    }
    for (;;) {
      if (this.nlNext < this.mark) {
        const i = buf.indexOf('\n', this.mark);
        this.nlNext = i === -1 ? NONE : i;
      }
      if (this.nlNext >= p) break;
      this.line++;
      this.mark = this.lineStart = this.nlNext + 1;
    }
    this.mark = p;
    return this.line;
  }

  /** The column (1-based) of buf[p]. */
  private columnAt(p: number): number {
    this.lineAt(p);
    const nl = this.buf.lastIndexOf('\n', p - 1);
    return nl >= 0 && p > 0 ? p - nl : p - this.lineStart + 1;
  }

  private syntaxError(p: number, message: string): SourceSyntaxError {
    const line = this.lineAt(p);
    const column = this.columnAt(p);
    return new SourceSyntaxError(`line ${line}, column ${column}: ${message}`, line, column);
  }

  private endError(): SourceSyntaxError {
    const line = this.openLine > 0 ? this.openLine : this.lineAt(this.openAt);
    return new SourceSyntaxError(
      `the dump ends inside ${this.openWhat} that starts on line ${line}: the file is truncated`,
      line,
    );
  }

  private open(what: string, at: number): void {
    this.openWhat = what;
    this.openAt = at;
    this.openLine = 0;
  }

  private noteMysql(): void {
    if (!this.dialectFixed) this.mysql = true;
  }

  // ---- Lexing helpers: each returns where what it reads ends, or NEED. ----

  /** Skips white space and comments (`#` ones anywhere in MySQL, and at a statement's start). */
  private skipSpace(p: number, top = false): number {
    const buf = this.buf;
    const len = buf.length;
    for (let i = p; i < len;) {
      const c = buf.charCodeAt(i);
      if (c === 32 || (c >= 9 && c <= 13)) {
        i++;
        continue;
      }
      if (c === DASH || c === SLASH || c === HASH) {
        const e = this.skipComment(i, top);
        if (e === NEED) return NEED;
        if (e !== i) {
          i = e;
          continue;
        }
      }
      return i;
    }
    return NEED;
  }

  /** The end of the comment at p; p if none starts there. */
  private skipComment(i: number, top = false): number {
    const buf = this.buf;
    const len = buf.length;
    const c = buf.charCodeAt(i);
    if (c === HASH) return this.mysql || top ? this.lineEnd(i) : i;
    if (i + 2 >= len && !this.eof) return NEED;
    const c2 = buf.charCodeAt(i + 1);
    if (c === DASH && c2 === DASH) {
      // MySQL wants white space after `--`.
      const c3 = buf.charCodeAt(i + 2);
      if (this.mysql && i + 2 < len && !(c3 === 32 || (c3 >= 9 && c3 <= 13))) return i;
      const e = this.lineEnd(i);
      if (e !== NEED && !this.dialectFixed) {
        if (buf.startsWith('-- MySQL dump', i) || buf.startsWith('-- MariaDB dump', i)) this.mysql = true;
      }
      return e;
    }
    if (c !== SLASH || c2 !== STAR) return i;
    if (buf.charCodeAt(i + 2) === 33) this.noteMysql(); // `/*!` : MySQL's versioned comment
    // PostgreSQL's block comments nest, MySQL's do not.
    let depth = 1;
    let j = i + 2;
    while (depth > 0) {
      const close = buf.indexOf('*/', j);
      if (close === -1) {
        this.open('a comment', i);
        return NEED;
      }
      const open = this.mysql ? -1 : buf.indexOf('/*', j);
      if (open !== -1 && open < close) {
        depth++;
        j = open + 2;
      } else {
        depth--;
        j = close + 2;
      }
    }
    return j;
  }

  /** The start of the line after the one at p. */
  private lineEnd(p: number): number {
    const nl = this.buf.indexOf('\n', p);
    if (nl !== -1) return nl + 1;
    return this.eof ? this.buf.length : NEED;
  }

  private wordEnd(p: number): number {
    const buf = this.buf;
    const len = buf.length;
    let i = p;
    while (i < len && isIdentChar(buf.charCodeAt(i))) i++;
    return i === len && !this.eof ? NEED : i;
  }

  /** An identifier (bare, "quoted" or `quoted`) into this.ident; p if none starts there. */
  private readIdent(p: number): number {
    const c = this.buf.charCodeAt(p);
    if (c === DQUOTE || c === BACKTICK) {
      if (c === BACKTICK) this.noteMysql();
      const e = this.readString(p, PLAIN);
      if (e === NEED) return NEED;
      this.ident = { text: this.sval, quoted: true };
      return e;
    }
    const e = this.wordEnd(p);
    if (e === NEED) return NEED;
    this.ident = { text: this.buf.slice(p, e), quoted: false };
    return e;
  }

  /** A dotted name into this.qname (empty if none starts at p). */
  private readQName(p: number): number {
    const buf = this.buf;
    const parts: Ident[] = [];
    let i = p;
    for (;;) {
      const e = this.readIdent(i);
      if (e === NEED) return NEED;
      if (e === i) break;
      parts.push(this.ident);
      i = e;
      if (i >= buf.length) {
        if (!this.eof) return NEED;
        break;
      }
      if (buf.charCodeAt(i) !== DOT) break;
      i++;
    }
    this.qname = parts;
    return i;
  }

  /** The end of the statement from p: past its delimiter, or the end of the text. */
  private skipStatement(p: number): number {
    const buf = this.buf;
    const len = buf.length;
    const delim = this.delim;
    const d = delim.charCodeAt(0);
    for (let i = p; i < len;) {
      const c = buf.charCodeAt(i);
      if (c === d && (delim.length === 1 || buf.startsWith(delim, i))) return i + delim.length;
      if (c === QUOTE || c === DQUOTE || c === BACKTICK || c === DOLLAR) {
        const e = this.skipQuotedAt(i);
        if (e === NEED) return NEED;
        i = e;
        continue;
      }
      if (c === DASH || c === SLASH || c === HASH) {
        const e = this.skipComment(i);
        if (e === NEED) return NEED;
        if (e !== i) {
          i = e;
          continue;
        }
      }
      i++;
    }
    return this.eof ? len : NEED;
  }

  /** Skips the string, quoted identifier or dollar-quoted string at i (else one character). */
  private skipQuotedAt(i: number): number {
    const c = this.buf.charCodeAt(i);
    if (c === QUOTE) return this.readString(i, this.stringMode(i));
    if (c === DQUOTE) return this.readString(i, this.mysql ? MYSQL : PLAIN);
    if (c === BACKTICK) {
      this.noteMysql();
      return this.readString(i, PLAIN);
    }
    if (c === DOLLAR && !this.mysql) return this.readDollar(i);
    return i + 1;
  }

  /** How the '…' string at i treats backslashes. */
  private stringMode(i: number): number {
    if (this.mysql) return MYSQL;
    const buf = this.buf;
    if (i > 0 && (buf.charCodeAt(i - 1) | 32) === 101 && (i < 2 || !isIdentChar(buf.charCodeAt(i - 2)))) return ESCAPE;
    return this.standardStrings ? PLAIN : ESCAPE;
  }

  /** A PostgreSQL $tag$…$tag$ string at i into this.sval; i + 1 if `$` starts none. */
  private readDollar(i: number): number {
    const buf = this.buf;
    const len = buf.length;
    if (i > 0 && isIdentChar(buf.charCodeAt(i - 1))) return i + 1;
    let j = i + 1;
    while (j < len && buf.charCodeAt(j) !== DOLLAR && isIdentChar(buf.charCodeAt(j))) j++;
    if (j >= len) return this.eof ? i + 1 : NEED;
    const first = buf.charCodeAt(i + 1);
    if (buf.charCodeAt(j) !== DOLLAR || (first >= 48 && first <= 57)) return i + 1;
    const tag = buf.slice(i, j + 1);
    const close = buf.indexOf(tag, j + 1);
    if (close === -1) {
      this.open('a dollar-quoted string', i);
      return NEED;
    }
    this.sval = buf.slice(j + 1, close);
    return close + tag.length;
  }

  /** From i to the next `,` or `)` outside brackets, strings and comments. */
  private skipExpr(i: number): number {
    const buf = this.buf;
    const len = buf.length;
    let depth = 0;
    while (i < len) {
      const c = buf.charCodeAt(i);
      if (c === LPAREN || c === LBRACKET) depth++;
      else if (c === RPAREN || c === RBRACKET) {
        if (depth === 0) {
          if (c === RPAREN) return i;
        } else depth--;
      } else if (c === COMMA) {
        if (depth === 0) return i;
      } else if (c === QUOTE || c === DQUOTE || c === BACKTICK || c === DOLLAR) {
        const e = this.skipQuotedAt(i);
        if (e === NEED) return NEED;
        i = e;
        continue;
      } else if (c === DASH || c === SLASH || c === HASH) {
        const e = this.skipComment(i);
        if (e === NEED) return NEED;
        if (e !== i) {
          i = e;
          continue;
        }
      }
      i++;
    }
    return NEED;
  }

  /** The quoted string (or identifier) at p into this.sval; its quote is buf[p]. */
  private readString(p: number, mode: number): number {
    if (mode === MYSQL) return this.readMysqlString(p);
    if (mode === ESCAPE) return this.readEscapeString(p);
    const buf = this.buf;
    const len = buf.length;
    const q = buf.charCodeAt(p);
    const quote = buf[p] as string;
    let out = '';
    let from = p + 1;
    for (;;) {
      const j = buf.indexOf(quote, from);
      if (j === -1) break;
      if (j + 1 >= len && !this.eof) break; // a doubled quote?
      if (buf.charCodeAt(j + 1) === q) {
        out += buf.slice(from, j + 1);
        from = j + 2;
        continue;
      }
      this.sval = out + buf.slice(from, j);
      return j + 1;
    }
    this.open(q === QUOTE ? 'a string' : 'a quoted identifier', p);
    return NEED;
  }

  private readMysqlString(p: number): number {
    const buf = this.buf;
    const len = buf.length;
    const q = buf.charCodeAt(p);
    let out = '';
    let from = p + 1;
    for (let i = from; i < len;) {
      const c = buf.charCodeAt(i);
      if (c === BACKSLASH) {
        if (i + 1 >= len) break;
        out += buf.slice(from, i) + mysqlEscape(buf[i + 1] as string);
        i += 2;
        from = i;
      } else if (c === q) {
        if (i + 1 >= len && !this.eof) break;
        if (buf.charCodeAt(i + 1) === q) {
          out += buf.slice(from, i + 1);
          i += 2;
          from = i;
          continue;
        }
        this.sval = out + buf.slice(from, i);
        return i + 1;
      } else i++;
    }
    this.open('a string', p);
    return NEED;
  }

  /** PostgreSQL E'…' (and '…' when standard_conforming_strings is off). */
  private readEscapeString(p: number): number {
    const buf = this.buf;
    const len = buf.length;
    let out = '';
    let bytes: number[] | undefined; // \xHH and \ooo escapes: bytes of UTF-8
    let from = p + 1;
    const flush = (): void => {
      if (bytes === undefined) return;
      out += this.decodeBytes(bytes);
      bytes = undefined;
    };
    for (let i = from; i < len;) {
      const c = buf.charCodeAt(i);
      if (c !== BACKSLASH && c !== QUOTE) {
        i++;
        continue;
      }
      if (i > from) {
        flush();
        out += buf.slice(from, i);
      }
      if (c === QUOTE) {
        if (i + 1 >= len && !this.eof) break;
        if (buf.charCodeAt(i + 1) === QUOTE) {
          flush();
          out += "'";
          i += 2;
          from = i;
          continue;
        }
        flush();
        this.sval = out;
        return i + 1;
      }
      if (i + 10 > len && !this.eof) break;
      const d = buf[i + 1] ?? '';
      let j = i + 2;
      if (d >= '0' && d <= '7') {
        while (j < i + 4 && j < len && buf.charCodeAt(j) >= 48 && buf.charCodeAt(j) <= 55) j++;
        (bytes ??= []).push(parseInt(buf.slice(i + 1, j), 8) & 0xff);
      } else if (d === 'x' && isHexDigit(buf.charCodeAt(j))) {
        j += isHexDigit(buf.charCodeAt(j + 1)) ? 2 : 1;
        (bytes ??= []).push(parseInt(buf.slice(i + 2, j), 16));
      } else {
        flush();
        const n = d === 'u' ? 4 : d === 'U' ? 8 : 0;
        const hex = n > 0 ? buf.slice(j, j + n) : '';
        if (n > 0 && hex.length === n && [...hex].every((h) => isHexDigit(h.charCodeAt(0)))) {
          const code = parseInt(hex, 16);
          out += code <= 0x10ffff ? String.fromCodePoint(code) : '\uFFFD';
          j += n;
        } else out += PG_ESCAPES[d] ?? d;
      }
      i = from = j;
    }
    this.open('a string', p);
    return NEED;
  }

  private decodeBytes(bytes: number[]): string {
    try {
      return utf8.decode(Uint8Array.from(bytes));
    } catch {
      this.badBytes = true;
      return '\uFFFD';
    }
  }

  // ---- Statements ----

  private topStep(): boolean {
    this.openWhat = null;
    const p = this.skipSpace(this.pos, true);
    if (p === NEED) return false;
    this.pos = p;
    const buf = this.buf;
    const c = buf.charCodeAt(p);
    if (c === SEMI) {
      this.pos = p + 1;
      return true;
    }
    if (c === BACKSLASH) {
      // A psql meta-command (\connect, \restrict): one line.
      const e = this.lineEnd(p);
      if (e === NEED) return false;
      this.pos = e;
      return true;
    }
    const w = this.wordEnd(p);
    if (w === NEED) return false;
    const word = w - p <= 9 ? buf.slice(p, w).toUpperCase() : '';
    this.open('a statement', p);
    if (word === 'INSERT' || word === 'REPLACE') return this.insertHeader(p, w);
    if (word === 'DELIMITER' && this.mysql) {
      const e = this.lineEnd(w);
      if (e === NEED) return false;
      this.delim = buf.slice(w, e).trim() || ';';
      this.pos = e;
      return true;
    }
    const end = this.skipStatement(w);
    if (end === NEED) return false;
    if (word === 'CREATE') this.onCreate(w, end);
    else if (word === 'SET') this.onSet(w, end);
    else if (word === 'COPY') this.onCopy(w, end);
    this.pos = end;
    return true;
  }

  /** INSERT [IGNORE] INTO name [(columns)] [OVERRIDING … VALUE] VALUES: on to its tuples. */
  private insertHeader(start: number, w: number): boolean {
    const buf = this.buf;
    this.open('an INSERT statement', start);
    let i = w;
    for (;;) {
      i = this.skipSpace(i);
      if (i === NEED) return false;
      const e = this.wordEnd(i);
      if (e === NEED) return false;
      if (e === i || !INSERT_MODIFIERS.has(buf.slice(i, e).toUpperCase())) break;
      i = e;
    }
    const nameStart = i;
    i = this.readQName(i);
    if (i === NEED) return false;
    const name = this.qname;
    if (name.length === 0) throw this.syntaxError(nameStart, 'expected the name of a table after INSERT INTO');
    const nameText = buf.slice(nameStart, i);
    i = this.skipSpace(i);
    if (i === NEED) return false;
    let columns: string[] | undefined;
    if (buf.charCodeAt(i) === LPAREN) {
      columns = [];
      for (i++; ;) {
        i = this.skipSpace(i);
        if (i === NEED) return false;
        if (columns.length === 0 && buf.charCodeAt(i) === RPAREN) break;
        const e = this.readIdent(i);
        if (e === NEED) return false;
        if (e === i)
          throw this.syntaxError(i, `expected a column name in the column list of the INSERT into ${display(name)}`);
        columns.push(this.ident.text);
        i = this.skipSpace(e);
        if (i === NEED) return false;
        const c = buf.charCodeAt(i);
        if (c === RPAREN) break;
        if (c !== COMMA)
          throw this.syntaxError(i, `expected "," or ")" in the column list of the INSERT into ${display(name)}`);
        i++;
      }
      i++;
    }
    let skipWords = 0;
    for (;;) {
      i = this.skipSpace(i);
      if (i === NEED) return false;
      const e = this.wordEnd(i);
      if (e === NEED) return false;
      const word = e - i <= 10 ? buf.slice(i, e).toUpperCase() : '';
      if (skipWords > 0 && e > i) skipWords--;
      else if (word === 'OVERRIDING') skipWords = 2;
      else if (word === 'VALUES' || word === 'VALUE') {
        i = e;
        break;
      } else {
        // INSERT … SELECT, … DEFAULT VALUES, … SET a = 1: no tuples to read.
        const end = this.skipStatement(i);
        if (end === NEED) return false;
        this.pos = end;
        return true;
      }
      i = e;
    }
    this.dialectFixed = true;
    this.stmtLine = this.lineAt(start);
    const table = this.tableFor(nameText, name);
    this.cur = table;
    this.curFromList = columns !== undefined;
    this.curColumns = columns ?? table.created;
    this.pos = i;
    this.state = TUPLE;
    return true;
  }

  /** The table an INSERT writes to: whether its rows are read, and its columns. */
  private tableFor(nameText: string, name: Ident[]): TableInfo {
    let table = this.tables.get(nameText);
    if (table !== undefined) return table;
    const wanted = this.wanted;
    let chosen: boolean;
    if (wanted !== undefined) chosen = matchesWanted(wanted, name);
    else if (this.chosen === undefined) {
      this.chosen = name;
      chosen = true;
    } else if (sameTable(this.chosen, name)) chosen = true;
    else {
      throw new SourceSyntaxError(
        `the dump holds rows of several tables (${display(this.chosen)}, ${display(name)}): choose one with --table`,
        this.stmtLine,
      );
    }
    if (!this.withRows.some((t) => sameTable(t, name)) && this.withRows.length < 100) this.withRows.push(name);
    let created: string[] | undefined;
    for (let k = this.creates.length - 1; k >= 0 && created === undefined; k--) {
      const create = this.creates[k] as { name: Ident[]; columns: string[] };
      if (sameTable(create.name, name)) created = create.columns;
    }
    table = { name, chosen, created, fallback: undefined };
    if (this.tables.size < 10_000) this.tables.set(nameText, table);
    return table;
  }

  /** CREATE TABLE name (…): remembers its column names. */
  private onCreate(w: number, end: number): void {
    const buf = this.buf;
    if (!this.dialectFixed && /\bENGINE\s*=/i.test(buf.slice(w, end))) this.mysql = true;
    let i = w;
    for (;;) {
      i = this.skipSpace(i);
      if (i === NEED || i >= end) return;
      const e = this.wordEnd(i);
      if (e === NEED) return;
      const word = buf.slice(i, Math.min(e, i + 10)).toUpperCase();
      i = e;
      if (word === 'TABLE') break;
      if (!CREATE_MODIFIERS.has(word)) return;
    }
    i = this.skipSpace(i);
    if (i === NEED) return;
    const ifEnd = this.wordEnd(i);
    if (ifEnd !== NEED && buf.slice(i, ifEnd).toUpperCase() === 'IF') {
      // IF NOT EXISTS
      for (let k = 0; k < 3 && i !== NEED; k++) {
        i = this.wordEnd(i);
        if (i !== NEED) i = this.skipSpace(i);
      }
      if (i === NEED) return;
    }
    i = this.readQName(i);
    if (i === NEED || this.qname.length === 0) return;
    const name = this.qname;
    i = this.skipSpace(i);
    if (i === NEED || buf.charCodeAt(i) !== LPAREN) return; // … AS SELECT, … PARTITION OF …
    const columns: string[] = [];
    for (i++; ;) {
      i = this.skipSpace(i);
      if (i === NEED || i >= end) return;
      if (buf.charCodeAt(i) === RPAREN) break;
      const e = this.readIdent(i);
      if (e === NEED) return;
      if (e > i) {
        const word = this.ident.quoted ? '' : this.ident.text.toUpperCase();
        if (!TABLE_CONSTRAINTS.has(word) && !(this.mysql && MYSQL_TABLE_INDEXES.has(word))) {
          columns.push(this.ident.text);
        }
      }
      const x = this.skipExpr(e);
      if (x === NEED || x >= end) return;
      if (buf.charCodeAt(x) === RPAREN) break;
      i = x + 1;
    }
    this.creates.push({ name, columns });
    this.tables.clear();
  }

  /** SET standard_conforming_strings = on | off (PostgreSQL). */
  private onSet(w: number, end: number): void {
    if (this.mysql) return;
    const m = /^\s*standard_conforming_strings\s*(?:=|to)\s*'?(on|off|true|false)'?/i.exec(this.buf.slice(w, end));
    if (m) this.standardStrings = /^(on|true)$/i.test(m[1] as string);
  }

  /** COPY name … FROM stdin: its data lines follow, up to `\.`. */
  private onCopy(w: number, end: number): void {
    if (!/\bFROM\s+stdin\b/i.test(this.buf.slice(w, end))) return;
    const i = this.skipSpace(w);
    if (i !== NEED && this.readQName(i) !== NEED && this.qname.length > 0) {
      const name = this.qname;
      if (!this.withCopy.some((t) => sameTable(t, name))) this.withCopy.push(name);
    }
    this.state = COPY_DATA;
  }

  // ---- Tuples ----

  private tupleStep(): boolean {
    this.open('an INSERT statement', 0);
    this.openLine = this.stmtLine;
    const p = this.skipSpace(this.pos);
    if (p === NEED) return false;
    const table = this.cur as TableInfo;
    if (this.buf.charCodeAt(p) !== LPAREN) {
      throw this.syntaxError(p, `expected "(" to start a tuple of the INSERT into ${display(table.name)}`);
    }
    this.open(table.chosen ? `the tuple of record ${this.ordinal + 1}` : 'a tuple', p);
    const end = table.chosen ? this.parseTuple(p) : this.skipTuple(p);
    if (end === NEED) return false;
    if (table.chosen) {
      this.ordinal++;
      this.item = this.toItem(table, p, end);
    }
    this.pos = end;
    this.state = AFTER_TUPLE;
    return true;
  }

  private afterTupleStep(): boolean {
    this.openWhat = null;
    const p = this.skipSpace(this.pos);
    if (p === NEED) return false;
    const c = this.buf.charCodeAt(p);
    if (c === COMMA || c === SEMI) {
      this.pos = p + 1;
      this.state = c === COMMA ? TUPLE : TOP;
      return true;
    }
    if (!isIdentChar(c)) throw this.syntaxError(p, 'expected "," or ";" after a tuple');
    // ON DUPLICATE KEY UPDATE …, ON CONFLICT …, RETURNING …
    this.open('an INSERT statement', 0);
    this.openLine = this.stmtLine;
    const end = this.skipStatement(p);
    if (end === NEED) return false;
    this.pos = end;
    this.state = TOP;
    return true;
  }

  /** Skips COPY data lines up to the line `\.`, consuming them as they come. */
  private copyStep(): boolean {
    this.openWhat = null;
    const buf = this.buf;
    const len = buf.length;
    // pos is at the line break before the next data line.
    for (let from = this.pos; ;) {
      const k = buf.indexOf('\n\\.', from);
      if (k === -1) {
        if (this.eof) {
          this.pos = len;
          this.state = TOP;
          return true;
        }
        const nl = buf.lastIndexOf('\n');
        if (nl > this.pos) this.pos = nl;
        return false;
      }
      const after = k + 3;
      if (after >= len && !this.eof) {
        this.pos = k;
        return false;
      }
      const c = after < len ? buf.charCodeAt(after) : NL;
      if (c === NL || c === CR) {
        this.pos = after;
        this.state = TOP;
        return true;
      }
      from = k + 1;
    }
  }

  private skipTuple(p: number): number {
    for (let i = p + 1; ; i++) {
      i = this.skipExpr(i);
      if (i === NEED) return NEED;
      if (this.buf.charCodeAt(i) === RPAREN) return i + 1;
    }
  }

  /** The tuple at p into this.values, or this.bad: the first value that is not a literal. */
  private parseTuple(p: number): number {
    const buf = this.buf;
    const values = this.values;
    values.length = 0;
    this.bad = undefined;
    this.badBytes = false;
    let i = this.skipSpace(p + 1);
    if (i === NEED) return NEED;
    if (buf.charCodeAt(i) === RPAREN) return i + 1;
    for (;;) {
      const v = i;
      let e = this.readValue(i);
      if (e === NEED) return NEED;
      if (e !== NOT_LITERAL) {
        e = this.skipSpace(e);
        if (e === NEED) return NEED;
        if (buf.charCodeAt(e) === COLON) {
          // `::type` after a literal (PostgreSQL).
          if (e + 1 >= buf.length) return NEED;
          if (buf.charCodeAt(e + 1) === COLON) e = this.skipExpr(e + 2);
          if (e === NEED) return NEED;
        }
      }
      const c = e >= 0 ? buf.charCodeAt(e) : -1;
      if (c === COMMA || c === RPAREN) values.push(this.vval);
      else {
        const x = this.skipExpr(e === NOT_LITERAL ? v : e);
        if (x === NEED) return NEED;
        this.bad ??= buf.slice(v, x).trim();
        e = x;
      }
      if (buf.charCodeAt(e) === RPAREN) return e + 1;
      i = this.skipSpace(e + 1);
      if (i === NEED) return NEED;
    }
  }

  /** The literal at i into this.vval; NOT_LITERAL if it is none. */
  private readValue(i: number): number {
    const buf = this.buf;
    const c = buf.charCodeAt(i);
    if (c === QUOTE || (c === DQUOTE && this.mysql)) return this.stringValue(i, this.stringMode(i), '');
    if ((c >= 48 && c <= 57) || c === DASH || c === PLUS || c === DOT) return this.readNumber(i);
    if (c === DOLLAR && !this.mysql) {
      const e = this.readDollar(i);
      if (e === i + 1) return NOT_LITERAL;
      if (e !== NEED) this.vval = this.sval;
      return e;
    }
    if (!isIdentChar(c)) return NOT_LITERAL;
    const w = this.wordEnd(i);
    if (w === NEED) return NEED;
    const next = buf.charCodeAt(w);
    if (w === i + 1 && next === QUOTE) {
      // E'…', N'…', X'…', B'…'
      const prefix = c | 32;
      if (prefix === 101 && !this.mysql) return this.stringValue(w, ESCAPE, '');
      if (prefix === 110) return this.stringValue(w, this.mysql ? MYSQL : PLAIN, '');
      if (prefix === 120) return this.stringValue(w, PLAIN, 'hex');
      if (prefix === 98) return this.stringValue(w, PLAIN, 'bits');
    }
    if (c === 95 && this.mysql) {
      // A character set introducer: _utf8mb4'…', _binary '…'
      const s = this.skipSpace(w);
      if (s === NEED) return NEED;
      const binary = buf.slice(i, w).toLowerCase() === '_binary';
      const q = buf.charCodeAt(s);
      if (q === QUOTE || q === DQUOTE) return this.stringValue(s, MYSQL, binary ? 'binary' : '');
      return q >= 48 && q <= 57 ? this.readNumber(s) : NOT_LITERAL;
    }
    if (w - i === 4 || w - i === 5) {
      const word = buf.slice(i, w).toUpperCase();
      this.vval = word === 'NULL' ? null : word === 'TRUE' ? 'true' : word === 'FALSE' ? 'false' : '';
      if (this.vval !== '') return w;
    }
    return NOT_LITERAL;
  }

  /** A quoted string as a value: as it is, as hex digits, as bits, or as `\x<hex>` of its bytes. */
  private stringValue(p: number, mode: number, as: '' | 'hex' | 'bits' | 'binary'): number {
    const e = this.readString(p, mode);
    if (e === NEED) return NEED;
    const s = this.sval;
    if (as === '') this.vval = s;
    else if (as === 'binary') this.vval = '\\x' + Buffer.from(s, 'utf8').toString('hex');
    else if (as === 'bits') {
      if (!/^[01]*$/.test(s)) return NOT_LITERAL;
      this.vval = s;
    } else {
      if (!/^[0-9a-fA-F]*$/.test(s)) return NOT_LITERAL;
      // MySQL X'…' is bytes; PostgreSQL's is a bit string.
      this.vval = this.mysql
        ? '\\x' + s.toLowerCase()
        : [...s].map((h) => parseInt(h, 16).toString(2).padStart(4, '0')).join('');
    }
    return e;
  }

  /** A number as written; MySQL's 0x… as `\x<hex>` and 0b… as its bits. */
  private readNumber(i: number): number {
    const buf = this.buf;
    const len = buf.length;
    let j = i;
    const sign = buf.charCodeAt(j);
    if (sign === DASH || sign === PLUS) j++;
    if (j === i && buf.charCodeAt(i) === 48 && this.mysql) {
      const base = buf.charCodeAt(i + 1) | 32;
      if (base === 120 || base === 98) {
        let k = i + 2;
        while (k < len && (base === 120 ? isHexDigit(buf.charCodeAt(k)) : (buf.charCodeAt(k) | 1) === 49)) k++;
        if (k >= len && !this.eof) return NEED;
        if (k === i + 2 || isIdentChar(buf.charCodeAt(k))) return NOT_LITERAL;
        this.vval = base === 120 ? '\\x' + buf.slice(i + 2, k).toLowerCase() : buf.slice(i + 2, k);
        return k;
      }
    }
    const intStart = j;
    while (j < len && isDigit(buf.charCodeAt(j))) j++;
    let digits = j - intStart;
    if (j < len && buf.charCodeAt(j) === DOT) {
      const fracStart = ++j;
      while (j < len && isDigit(buf.charCodeAt(j))) j++;
      digits += j - fracStart;
    }
    if (j + 2 >= len && !this.eof) return NEED;
    if (digits > 0 && (buf.charCodeAt(j) | 32) === 101) {
      let k = j + 1;
      const s = buf.charCodeAt(k);
      if (s === DASH || s === PLUS) k++;
      if (isDigit(buf.charCodeAt(k))) {
        while (k < len && isDigit(buf.charCodeAt(k))) k++;
        j = k;
      }
    }
    if (j >= len && !this.eof) return NEED;
    if (digits === 0 || (j < len && isIdentChar(buf.charCodeAt(j)))) return NOT_LITERAL;
    this.vval = buf.slice(i, j);
    return j;
  }

  /** The record of the tuple buf[start, end), or its reject. */
  private toItem(table: TableInfo, start: number, end: number): SourceItem {
    if (this.badBytes || (this.mayHaveUndecodable && this.buf.slice(start, end).includes(UNDECODABLE))) {
      return this.reject(start, end, 'encoding', "bytes not valid in the file's encoding");
    }
    if (this.bad !== undefined) {
      const what = this.bad === '' ? 'an empty value' : `\`${cut(this.bad, 60)}\``;
      return this.reject(
        start,
        end,
        'not_a_literal',
        `${what} is not a literal value (only strings, numbers, NULL, TRUE and FALSE are read)`,
      );
    }
    const values = this.values;
    const columns = this.curColumns ?? (table.fallback ??= columnNames(values.length));
    if (values.length !== columns.length) {
      const from = this.curFromList
        ? "the INSERT's column list"
        : this.curColumns !== undefined
          ? `CREATE TABLE ${display(table.name)}`
          : 'the first tuple';
      return this.reject(
        start,
        end,
        'column_count',
        `${values.length} values, but ${from} has ${columns.length} columns`,
      );
    }
    const map = new Map<string, string | null>();
    for (let k = 0; k < columns.length; k++) map.set(columns[k] as string, values[k] as string | null);
    return { kind: 'record', line: this.ordinal, values: map };
  }

  private reject(start: number, end: number, rule: string, what: string): SourceReject {
    return {
      kind: 'reject',
      line: this.ordinal,
      rule,
      message: `record ${this.ordinal} (line ${this.lineAt(start)}): ${what}`,
      raw: this.buf.slice(start, Math.min(end, start + MAX_REJECT_RAW_CHARS)).replaceAll(UNDECODABLE, '\uFFFD'),
    };
  }

  /** At the end: the chosen table must have had INSERT rows. */
  private requireRows(): void {
    if (this.ordinal > 0) return;
    const copyHint = 'which pgferry does not read: dump it with `pg_dump --inserts` (or --column-inserts)';
    const wanted = this.wanted;
    if (wanted !== undefined) {
      const name = display(wanted);
      if (this.withCopy.some((t) => matchesWanted(wanted, t))) {
        throw new SourceSyntaxError(
          `the dump holds the rows of table ${name} only as COPY … FROM stdin data, ${copyHint}`,
        );
      }
      const others = this.withRows.map(display);
      throw new SourceSyntaxError(
        others.length > 0
          ? `the dump holds no INSERT rows of table ${name}; it holds rows of: ${others.join(', ')}`
          : `the dump holds no INSERT rows of table ${name}, nor of any other table`,
      );
    }
    if (this.withCopy.length > 0) {
      throw new SourceSyntaxError(
        `the dump holds its rows as COPY … FROM stdin data (${this.withCopy.map(display).join(', ')}), ${copyHint}`,
      );
    }
    throw new SourceSyntaxError('the dump holds no INSERT … VALUES rows');
  }
}

function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === DOLLAR || c >= 128;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102);
}

const MYSQL_ESCAPES: Record<string, string> = {
  '0': '\0',
  b: '\b',
  n: '\n',
  r: '\r',
  t: '\t',
  Z: '\x1a',
  '%': '\\%',
  _: '\\_',
};

/** MySQL: a backslash before any other character just stands for that character. */
function mysqlEscape(c: string): string {
  return MYSQL_ESCAPES[c] ?? c;
}

const PG_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function cut(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

const columnNameCache: string[][] = [];

function columnNames(n: number): string[] {
  return (columnNameCache[n] ??= Array.from({ length: n }, (_, k) => `col_${k + 1}`));
}

/** `--table`: `name` or `schema.name`, each part bare or "quoted". */
function parseTableName(s: string): Ident[] {
  const parts: Ident[] = [];
  let i = 0;
  for (;;) {
    const q = s[i];
    if (q === '"' || q === '`') {
      let text = '';
      let j = i + 1;
      for (;;) {
        const k = s.indexOf(q, j);
        if (k === -1) {
          text += s.slice(j);
          j = s.length;
          break;
        }
        text += s.slice(j, k);
        j = k + 1;
        if (s[j] !== q) break;
        text += q;
        j++;
      }
      parts.push({ text, quoted: true });
      i = j;
    } else {
      let k = s.indexOf('.', i);
      if (k === -1) k = s.length;
      parts.push({ text: s.slice(i, k).trim(), quoted: false });
      i = k;
    }
    if (s[i] !== '.') return parts;
    i++;
  }
}

/** Two names in the dump: quoted on both sides compare exactly, else case-insensitively. */
function sameIdent(a: Ident, b: Ident): boolean {
  return a.quoted && b.quoted ? a.text === b.text : a.text.toLowerCase() === b.text.toLowerCase();
}

/** The same table: same name, and same schema when both names have one. */
function sameTable(a: Ident[], b: Ident[]): boolean {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0 || !sameIdent(a[n - 1] as Ident, b[m - 1] as Ident)) return false;
  return n < 2 || m < 2 || sameIdent(a[n - 2] as Ident, b[m - 2] as Ident);
}

/** --table against a name in the dump: a quoted part of --table compares exactly. */
function matchesWanted(wanted: Ident[], name: Ident[]): boolean {
  const same = (w: Ident, d: Ident): boolean =>
    w.quoted ? w.text === d.text : w.text.toLowerCase() === d.text.toLowerCase();
  const n = wanted.length;
  const m = name.length;
  if (n === 0 || m === 0 || !same(wanted[n - 1] as Ident, name[m - 1] as Ident)) return false;
  return n < 2 || m < 2 || same(wanted[n - 2] as Ident, name[m - 2] as Ident);
}

/** A table name as --table takes it. */
function display(name: Ident[]): string {
  return name
    .map((p) => (/^[A-Za-z_][A-Za-z0-9_$]*$/.test(p.text) ? p.text : `"${p.text.replaceAll('"', '""')}"`))
    .join('.');
}
