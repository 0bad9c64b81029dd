import { PgferryError } from '../../errors.js';

/** A source database, as `--from` named it. */
export interface DatabaseSource {
  kind: 'postgres' | 'mysql';
  /** The URL to connect with: it may hold a password, so it is never stored or printed. */
  url: string;
  /**
   * What pgferry records and prints instead: `env:LEGACY_URL` when the URL came from the
   * environment, else the URL without its password.
   */
  display: string;
}

/**
 * The source database `--from` names: a `postgres://`, `postgresql://`, `mysql://` or
 * `mariadb://` URL, or `env:NAME`, the name of an environment variable holding one (so that a
 * secret stays out of shell history, crontabs and the catalog).
 *
 * @example
 *   resolveDatabaseSource('env:LEGACY_URL') // { kind: 'mysql', url: 'mysql://app:s3cret@…', display: 'env:LEGACY_URL' }
 */
export function resolveDatabaseSource(from: string): DatabaseSource {
  let url = from;
  let display: string | undefined;
  if (from.startsWith('env:')) {
    const name = from.slice(4);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new PgferryError(`--from ${from}: not an environment variable name`);
    }
    const value = process.env[name];
    if (!value) throw new PgferryError(`--from ${from}: the environment variable ${name} is not set`);
    url = value;
    display = from;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the value: it may be a URL with a password, mistyped.
    throw new PgferryError(`--from ${display ?? 'URL'}: not a URL (postgres://… or mysql://…)`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  const kind =
    scheme === 'postgres' || scheme === 'postgresql'
      ? 'postgres'
      : scheme === 'mysql' || scheme === 'mariadb'
        ? 'mysql'
        : undefined;
  if (!kind) {
    throw new PgferryError(`--from: a ${scheme}:// URL is not a source pgferry reads (postgres:// or mysql://)`);
  }
  return { kind, url, display: display ?? withoutPassword(parsed) };
}

/** A URL as it may be shown: its password left out. */
export function withoutPassword(url: URL): string {
  const copy = new URL(url.toString());
  copy.password = '';
  return copy.toString();
}
