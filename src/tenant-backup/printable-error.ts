import { PgferryError } from '../errors.js';
import { printable } from '../report/text-table.js';

/**
 * A user error whose message may quote a backup file's text (its table, column and type names
 * are the file's): made printable, so that an escape sequence in a file cannot reach the
 * terminal. Its message already holds what PostgreSQL's detail repeats, which is left out.
 */
export function asPrintableError(error: unknown): unknown {
  if (!(error instanceof PgferryError)) return error;
  const message = printable(error.message);
  const hint = error.hint === undefined ? undefined : printable(error.hint);
  if (message === error.message && hint === error.hint) return error;
  return new PgferryError(message, { exitCode: error.exitCode, location: error.location, hint });
}
