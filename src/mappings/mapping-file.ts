import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { PgferryError } from '../errors.js';

/** One declared check: a boolean SQL expression over the output columns, and its message. */
export interface MappingCheck {
  expression: string;
  message: string;
  line: number;
}

/** A parsed mapping file. */
export interface Mapping {
  name: string;
  path: string;
  source: string;
  sha256: string;
  /** Schema-qualified target table, as written. */
  target: string;
  keyColumns: string[];
  onConflict: string;
  duplicates: 'last' | 'first' | 'reject';
  checks: MappingCheck[];
  /** The SELECT, without trailing semicolon. */
  selectSql: string;
  /** Line of the file where the SELECT starts. */
  selectLine: number;
  /** Line of each header key, for error positions. */
  headerLines: Record<string, number>;
}

export interface MappingProblem {
  line: number;
  message: string;
}

const KEYS = ['target', 'key', 'on_conflict', 'duplicates', 'check', 'description'] as const;
const HEADER_LINE = /^--\s*([A-Za-z_]+)\s*:\s*(.*)$/;
const IDENTIFIER = /^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")$/;

/**
 * Parses a mapping: a header of `-- key: value` lines, then one SELECT over `staged`.
 * Every problem is collected; the error names each with its line.
 *
 * @example
 *   const mapping = parseMapping(text, 'mappings/products.sql');
 */
export function parseMapping(source: string, file: string): Mapping {
  const problems: MappingProblem[] = [];
  const lines = source.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header: Record<string, { value: string; line: number }[]> = {};
  let selectLine = 0;

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i].trim();
    if (text === '') continue;
    if (!text.startsWith('--')) {
      selectLine = i + 1;
      break;
    }
    const match = HEADER_LINE.exec(text);
    if (!match) continue; // a free comment
    const key = match[1].toLowerCase();
    if (!(KEYS as readonly string[]).includes(key)) {
      problems.push({ line: i + 1, message: `unknown header key "${match[1]}" (known: ${KEYS.join(', ')})` });
      continue;
    }
    // A value may carry its own trailing comment: `-- duplicates: last   -- last | first`.
    const value = key === 'check' ? match[2].trim() : match[2].replace(/\s+--.*$/, '').trim();
    (header[key] ??= []).push({ value, line: i + 1 });
  }

  const single = (key: string): { value: string; line: number } | undefined => {
    const entries = header[key];
    if (!entries) return undefined;
    if (entries.length > 1) problems.push({ line: entries[1].line, message: `"${key}" is given more than once` });
    return entries[0];
  };

  const target = single('target');
  if (!target) problems.push({ line: 1, message: 'missing header "-- target: schema.table"' });
  else if (!/^(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+")\.(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+")$/.test(target.value)) {
    problems.push({
      line: target.line,
      message: `target must be a schema-qualified table (schema.table), not "${target.value}"`,
    });
  }

  const key = single('key');
  const keyColumns: string[] = [];
  if (!key) problems.push({ line: 1, message: 'missing header "-- key: column[, column…]"' });
  else {
    // Commas inside a quoted identifier ("a,b") don't separate columns.
    for (const part of (key.value.match(/(?:"(?:[^"]|"")*"|[^,])+|(?<=^|,)(?=,|$)/g) ?? ['']).map((p) => p.trim())) {
      if (!IDENTIFIER.test(part)) {
        problems.push({ line: key.line, message: `key column "${part}" is not a column name` });
      } else {
        keyColumns.push(part.startsWith('"') ? part.slice(1, -1).replaceAll('""', '"') : part.toLowerCase());
      }
    }
  }

  const onConflict = single('on_conflict');
  if (onConflict && !/^(update|skip|reject|newer:\s*[A-Za-z_][\w$]*)$/.test(onConflict.value)) {
    problems.push({
      line: onConflict.line,
      message: `on_conflict must be update, skip, reject or newer:<column>, not "${onConflict.value}"`,
    });
  }
  const duplicates = single('duplicates');
  if (duplicates && !['last', 'first', 'reject'].includes(duplicates.value)) {
    problems.push({
      line: duplicates.line,
      message: `duplicates must be last, first or reject, not "${duplicates.value}"`,
    });
  }
  single('description');

  const checks: MappingCheck[] = [];
  for (const entry of header.check ?? []) {
    // The message follows the last " | "; SQL's || has no spaces around a single bar.
    const split = entry.value.match(/^(?:(.*\S)\s+)?\|\s+(.+)$/s);
    const expression = (split ? (split[1] ?? '') : entry.value).trim();
    const message = split ? split[2].trim() : `check failed: ${expression}`;
    if (expression === '') problems.push({ line: entry.line, message: 'check has no expression' });
    else if (!split && /(?:^|\s)\|$/.test(expression))
      problems.push({ line: entry.line, message: 'check has no message after "|"' });
    else checks.push({ expression, message, line: entry.line });
  }

  let selectSql = '';
  if (selectLine === 0) {
    // The last line of the file (a final newline starts no line).
    const lastLine = Math.max(1, lines.length - (lines.length > 1 && lines[lines.length - 1] === '' ? 1 : 0));
    problems.push({ line: lastLine, message: 'the mapping has no SELECT after its header' });
  } else {
    // Trailing semicolons go, also when comment lines or a comment follow them (a comment
    // without quotes, so that a string literal is never cut).
    selectSql = lines
      .slice(selectLine - 1)
      .join('\n')
      .replace(/\s+$/, '')
      .replace(/;(?:\s|;|--[^\n'"]*)*$/, '')
      .replace(/\s+$/, '');
    if (!/^\s*(?:(?:--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)\s*)*\(*\s*(select|with|values|table)\b/i.test(selectSql)) {
      problems.push({
        line: selectLine,
        message: 'the mapping body must be one SELECT (or WITH … SELECT) over staged',
      });
    }
  }

  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line);
    const first = problems[0];
    throw new PgferryError(
      problems.map((p, i) => (i === 0 ? p.message : `${file}:${p.line}: ${p.message}`)).join('\n'),
      {
        location: { file, line: first.line },
      },
    );
  }

  const headerLines: Record<string, number> = {};
  for (const [k, entries] of Object.entries(header)) headerLines[k] = entries[0].line;
  return {
    name: path.basename(file).replace(/\.sql$/i, ''),
    path: file,
    source,
    sha256: createHash('sha256').update(source).digest('hex'),
    target: target!.value,
    keyColumns,
    // newer:<column> names an unquoted identifier: folded to lower case, like key columns.
    onConflict:
      onConflict?.value
        .replace(/\s+/g, '')
        .replace(/^newer:(.*)$/, (_, column: string) => `newer:${column.toLowerCase()}`) ?? 'update',
    duplicates: (duplicates?.value as Mapping['duplicates']) ?? 'last',
    checks,
    selectSql,
    selectLine,
    headerLines,
  };
}

/**
 * Finds and parses a mapping: a path to a `.sql` file, or a name looked up as
 * `<mappingsDir>/<name>.sql`. `notFoundHint`: how the caller's user names another folder.
 */
export async function readMapping(
  nameOrPath: string,
  mappingsDir = 'mappings',
  notFoundHint = 'write the mapping there, or give --mappings-dir',
): Promise<Mapping> {
  const file =
    nameOrPath.endsWith('.sql') || nameOrPath.includes('/') ? nameOrPath : path.join(mappingsDir, `${nameOrPath}.sql`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(path.basename(file).replace(/\.sql$/i, ''))) {
    throw new PgferryError(`invalid mapping name "${nameOrPath}": use letters, digits, _ . -`);
  }
  if (!existsSync(file)) {
    throw new PgferryError(`mapping "${nameOrPath}" not found: no file ${file}`, {
      hint: notFoundHint,
    });
  }
  return parseMapping(await readFile(file, 'utf8'), file);
}

/** Where in the mapping file a position of an SQL statement that embeds the SELECT falls. */
export function locateInMapping(
  mapping: Mapping,
  statement: string | undefined,
  position: string | number | undefined,
) {
  if (!statement || position === undefined) return undefined;
  // PostgreSQL counts positions in characters (code points), JavaScript strings in UTF-16 units.
  const index = statement.indexOf(mapping.selectSql);
  if (index < 0) return undefined;
  const offset = codePoints(statement.slice(0, index));
  const at = Number(position) - 1 - offset;
  const select = Array.from(mapping.selectSql);
  if (!Number.isInteger(at) || at < 0 || at >= select.length) return undefined;
  const before = select.slice(0, at);
  const lineStart = before.lastIndexOf('\n') + 1;
  return {
    file: mapping.path,
    line: mapping.selectLine + before.filter((c) => c === '\n').length,
    column: at - lineStart + 1,
  };
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
