import { PgferryError } from '../../errors.js';
import type { DatabaseSource } from './database-url.js';

/**
 * The SELECT a database load reads: `--query` as given, or every column of `--table`
 * (`schema.table` or `table`; unquoted names as the source folds them, quoted ones as
 * written), quoted for the source's dialect.
 *
 * @example
 *   sourceQuery({ kind: 'mysql', … }, { table: 'shop.items' }) // 'select * from `shop`.`items`'
 */
export function sourceQuery(source: DatabaseSource, options: { table?: string; query?: string }): string {
  if ((options.table === undefined) === (options.query === undefined)) {
    throw new PgferryError('--from needs --table or --query (one of them)', {
      hint: "e.g. --table legacy.items, or --query 'select * from items where active'",
    });
  }
  if (options.query !== undefined) {
    const query = options.query.trim().replace(/;\s*$/, '');
    if (query === '') throw new PgferryError('--query is empty');
    return query;
  }
  const parts = splitName(options.table!);
  const quote = source.kind === 'postgres' ? quotePostgres : quoteMysql;
  return `select * from ${parts.map(quote).join('.')}`;
}

/** `a.b`, `"A"."B"`, `` `a`.`b` ``: the parts, unquoted ones folded to lower case for PostgreSQL. */
function splitName(name: string): { text: string; quoted: boolean }[] {
  const parts: { text: string; quoted: boolean }[] = [];
  const pattern = /\s*(?:"((?:[^"]|"")+)"|`((?:[^`]|``)+)`|([^."`\s]+))\s*(\.|$)/gy;
  let at = 0;
  for (let m = pattern.exec(name); m && at < name.length; m = pattern.exec(name)) {
    if (m[1] !== undefined) parts.push({ text: m[1].replaceAll('""', '"'), quoted: true });
    else if (m[2] !== undefined) parts.push({ text: m[2].replaceAll('``', '`'), quoted: true });
    else parts.push({ text: m[3], quoted: false });
    at = pattern.lastIndex;
    if (m[4] === '') break;
  }
  if (parts.length === 0 || parts.length > 2 || at !== name.length) {
    throw new PgferryError(`--table ${JSON.stringify(name)}: not a table name (table or schema.table)`);
  }
  return parts;
}

function quotePostgres(part: { text: string; quoted: boolean }): string {
  const text = part.quoted ? part.text : part.text.toLowerCase();
  return `"${text.replaceAll('"', '""')}"`;
}

function quoteMysql(part: { text: string; quoted: boolean }): string {
  return `\`${part.text.replaceAll('`', '``')}\``;
}
