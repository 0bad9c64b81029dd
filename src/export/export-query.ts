import { PgferryError } from '../errors.js';

const QUERY_STARTS = new Set(['select', 'values', 'table', 'with']);

/**
 * Refuses, with a clear message, an export query that does not start as a query should:
 * SELECT, VALUES, TABLE or WITH (after comments and opening parentheses). This is for the
 * message only; what keeps an export to reading the tenant's rows is PostgreSQL (see
 * sql/functions/export.sql), which refuses any other statement and a WITH that changes
 * data.
 *
 * @example
 *   checkExportQuery('delete from app.products') // throws: … not DELETE
 */
export function checkExportQuery(query: string): void {
  const word = firstWord(query);
  if (word === undefined) throw new PgferryError('--query is empty');
  if (!QUERY_STARTS.has(word.toLowerCase())) {
    throw new PgferryError(
      `--query must be a single SELECT, VALUES, TABLE or WITH … SELECT statement, not ${word.toUpperCase()}`,
    );
  }
}

/** The first word of SQL text, past white space, comments and `(`. */
function firstWord(sql: string): string | undefined {
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (/\s/.test(c) || c === '(') {
      i++;
    } else if (sql.startsWith('--', i)) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
    } else if (sql.startsWith('/*', i)) {
      // Block comments nest in PostgreSQL.
      let depth = 0;
      do {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else {
          i++;
        }
      } while (depth > 0 && i < sql.length);
    } else {
      return /^[A-Za-z_]\w*/.exec(sql.slice(i))?.[0] ?? sql[i];
    }
  }
  return undefined;
}

/**
 * Splits `--columns` at commas outside double quotes: `sku, "Item Code"` is
 * `['sku', '"Item Code"']` (each name is read as in SQL by the database).
 */
export function splitColumnList(list: string): string[] {
  const names: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of list) {
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      names.push(current.trim());
      current = '';
    } else {
      current += c;
    }
  }
  names.push(current.trim());
  return names;
}
