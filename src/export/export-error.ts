import { isDatabaseError, PgferryError } from '../errors.js';

/** SQLSTATE classes of errors in what the user gave (SQL, names), not in pgferry or the server. */
const USER_SQLSTATE = /^(0A|21|22|23|25|2F|34|38|39|3F|42|44|54|55)/;

/** PostgreSQL's own SQLSTATEs this file branches on. */
const FEATURE_NOT_SUPPORTED = '0A000';
const READ_ONLY_SQL_TRANSACTION = '25006';

/** Where prepare_export() and the export function run the user's SQL (see sql/functions/export.sql). */
const FROM_TENANT_SQL = /export_describe_|pgferry_export_describe|SQL function "export_/;

/**
 * The error a user sees for a failed export: a user error (exit 2) for anything wrong in what
 * was asked — unknown names, bad SQL, a query that writes — with PostgreSQL's message, saying
 * whether it came from --query or --where and where in that text it points (PostgreSQL's
 * position is in the query pgferry wrapped around it). Anything else (a lost connection, a
 * full disk) is returned as it is.
 */
export function asExportError(error: unknown, options: { query?: string; where?: string }): unknown {
  if (error instanceof PgferryError || !isDatabaseError(error) || !USER_SQLSTATE.test(error.code ?? '')) return error;
  if (!FROM_TENANT_SQL.test(`${error.where ?? ''}\n${error.internalQuery ?? ''}`)) {
    return new PgferryError(error.message, { cause: error, hint: error.hint });
  }
  const option = options.query !== undefined ? '--query' : options.where !== undefined ? '--where' : '--table';
  if (error.code === FEATURE_NOT_SUPPORTED && /data-modifying/.test(error.message)) {
    return new PgferryError(`${option} must not change data: ${error.message}`, { cause: error });
  }
  if (error.code === READ_ONLY_SQL_TRANSACTION) {
    return new PgferryError(`${option} tried to change data, and an export only reads: ${error.message}`, {
      cause: error,
    });
  }
  return new PgferryError(`bad ${option}: ${error.message}${position(error, options)}`, {
    cause: error,
    hint: error.hint,
  });
}

/** ` (at character N of --query)`, when PostgreSQL's position falls in the user's text. */
function position(
  error: { internalQuery?: string; internalPosition?: string },
  options: { query?: string; where?: string },
) {
  const query = error.internalQuery;
  if (!query || !error.internalPosition) return '';
  // The user's text as prepare_export() and export_table_query() put it, after these.
  const [option, text, before] =
    options.query !== undefined
      ? ['--query', options.query.replace(/[\s;]+$/, ''), 'select * from (\n']
      : ['--where', options.where ?? '', '\nwhere (\n'];
  const marker = query.indexOf(before + text);
  if (marker < 0 || text === '') return '';
  const offset = Number(error.internalPosition) - 1 - (marker + before.length);
  return offset >= 0 && offset <= text.length ? ` (at character ${offset + 1} of ${option})` : '';
}
