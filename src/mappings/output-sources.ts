/**
 * Which source column each output column of a mapping comes from, where that is plain: the
 * select list item reads exactly one staged column (`upper(s."Item Code") as sku` → `Item
 * Code`). Used to point a reject at the source's cell (`Products!C12`); items that combine
 * columns, or none, are left out. A light scan of the SQL, not a parser: it only has to be
 * right for the common case and never wrong about a column it names.
 *
 * @example
 *   outputSources('select s."Item Code" as sku, s.a || s.b as name from staged s', ['Item Code', 'a', 'b'])
 *   // Map { 'sku' => 'Item Code' }
 */
export function outputSources(selectSql: string, stagedColumns: string[]): Map<string, string> {
  const staged = new Set(stagedColumns);
  const out = new Map<string, string>();
  for (const item of selectListItems(selectSql)) {
    const tokens = identifierTokens(item);
    if (tokens.length === 0) continue;
    // The alias: after a final `as`, or the item itself when it is just a column.
    let alias: string | undefined;
    const last = tokens[tokens.length - 1];
    const beforeLast = tokens[tokens.length - 2];
    if (beforeLast && !beforeLast.quoted && beforeLast.name === 'as' && beforeLast.end <= last.start) {
      alias = last.name;
      tokens.splice(tokens.length - 2, 2);
    } else if (item.trim().endsWith(last.text)) {
      alias = last.name;
    }
    if (alias === undefined) continue;
    const read = new Set(tokens.map((t) => t.name).filter((name) => staged.has(name)));
    if (read.size === 1) out.set(alias, [...read][0]);
  }
  return out;
}

interface IdentifierToken {
  name: string;
  text: string;
  quoted: boolean;
  start: number;
  end: number;
}

/** The items of the first select list, split at commas outside brackets, strings and comments. */
function selectListItems(sql: string): string[] {
  const items: string[] = [];
  const start = /\bselect\b/i.exec(sql);
  if (!start) return items;
  let depth = 0;
  let itemStart = start.index + start[0].length;
  let i = itemStart;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      i = skipQuoted(sql, i, c);
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl;
      continue;
    }
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && c === ',') {
      items.push(sql.slice(itemStart, i));
      itemStart = i + 1;
    } else if (depth === 0 && /^from\b/i.test(sql.slice(i, i + 5)) && /\W/.test(sql[i - 1] ?? ' ')) {
      break;
    }
    i++;
  }
  items.push(sql.slice(itemStart, i));
  return items;
}

function skipQuoted(sql: string, at: number, quote: string): number {
  let i = at + 1;
  for (;;) {
    const end = sql.indexOf(quote, i);
    if (end < 0) return sql.length;
    if (sql[end + 1] === quote) {
      i = end + 2;
      continue;
    }
    return end + 1;
  }
}

/** Quoted and bare identifiers of an expression (bare ones folded to lower case), in order. */
function identifierTokens(expression: string): IdentifierToken[] {
  const tokens: IdentifierToken[] = [];
  const pattern = /"((?:[^"]|"")*)"|'(?:[^']|'')*'|--[^\n]*|([A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)/g;
  for (let m = pattern.exec(expression); m; m = pattern.exec(expression)) {
    if (m[1] !== undefined) {
      tokens.push({
        name: m[1].replaceAll('""', '"'),
        text: m[0],
        quoted: true,
        start: m.index,
        end: pattern.lastIndex,
      });
    } else if (m[2] !== undefined) {
      tokens.push({ name: m[2].toLowerCase(), text: m[0], quoted: false, start: m.index, end: pattern.lastIndex });
    }
  }
  return tokens;
}
