import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';

import type pg from 'pg';
import { parse, toClientConfig } from 'pg-connection-string';

import { PgferryError } from '../errors.js';

/** libpq's sslmode values, and node-postgres's `no-verify` (TLS, nothing verified). */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** A connection as libpq would make it from a URL and the PG* variables. */
export interface ConnectionSettings {
  /** For pg.Client and pg.Pool: host, port, user … and `ssl` as the sslmode means it. */
  readonly config: pg.ClientConfig;
  /** The config to try when the first connection fails as `prefer` or `allow` allow (see tls-fallback). */
  readonly fallback?: pg.ClientConfig;
  readonly sslmode: SslMode;
  /** What the server's certificate is checked against: a file, `system`, or nothing. */
  readonly rootCert?: string;
  /** `host:port`, for messages. */
  readonly address: string;
}

/** URL parameters that are TLS settings: read here, never by pg-connection-string. */
const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat', 'sslnegotiation'];

/**
 * The pg config for `url` (or, without one, the PG* variables of `env`) with the TLS settings
 * (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) meaning what they mean to libpq and psql: a
 * URL's parameter wins over its variable (`PGSSLMODE` …), and `prefer` is the default.
 * node-postgres alone reads them otherwise (its `require` verifies the certificate, and it
 * ignores PGSSLROOTCERT, PGSSLCERT and PGSSLKEY).
 *
 * @example
 *   const { config } = connectionSettings({ url: 'postgres://db.example.com/app?sslmode=verify-full' });
 *   const client = new pg.Client(config);
 */
export function connectionSettings(source: { url?: string; env?: NodeJS.ProcessEnv }): ConnectionSettings {
  const env = source.env ?? process.env;
  let base: pg.ClientConfig;
  let params = new URLSearchParams();
  let address: { host?: string; port?: number | string };
  if (source.url) {
    const split = splitTlsParameters(source.url);
    params = split.params;
    // The URL, TLS parameters taken out, stays whole: a copy of a pool's options (which hide
    // the password) still holds the password, and pg reads the rest as it always did.
    base = { connectionString: split.url };
    // pg-connection-string would turn it into ssl=true (verify-full); pg reads it from here.
    const negotiation = params.get('sslnegotiation');
    if (negotiation) Object.assign(base, { sslnegotiation: negotiation });
    const parsed = toClientConfig(parse(split.url));
    address = { host: parsed.host || env.PGHOST, port: parsed.port || env.PGPORT };
  } else {
    // pg reads the PG* variables of process.env itself; these are those of `env`.
    base = {};
    if (env.PGHOST) base.host = env.PGHOST;
    if (env.PGPORT) base.port = Number(env.PGPORT);
    if (env.PGDATABASE) base.database = env.PGDATABASE;
    if (env.PGUSER) base.user = env.PGUSER;
    if (env.PGPASSWORD) base.password = env.PGPASSWORD;
    address = { host: env.PGHOST, port: env.PGPORT };
  }

  // An empty value is no value, as in libpq.
  const setting = (name: string): string | undefined => params.get(name) || env[`PG${name.toUpperCase()}`] || undefined;
  const rootCertSetting = setting('sslrootcert');
  const sslmode = readSslMode(
    params.get('sslmode') || sslParameter(params.get('ssl')) || env.PGSSLMODE,
    rootCertSetting,
  );
  const where = `${address.host || 'localhost'}:${address.port || 5432}`;
  const home = env.HOME || os.homedir();
  const defaultFile = (name: string) => path.join(home, '.postgresql', name);

  if (rootCertSetting === 'system' && sslmode !== 'verify-full')
    throw new PgferryError(`weak sslmode "${sslmode}" may not be used with sslrootcert=system (use "verify-full")`);
  // libpq ignores sslmode on a Unix-domain socket: PostgreSQL offers no TLS there.
  if (sslmode === 'disable' || address.host?.startsWith('/'))
    return { config: { ...base, ssl: false }, sslmode, address: where };

  const clientCert = clientCertificate(
    setting('sslcert') ?? defaultFile('postgresql.crt'),
    setting('sslkey'),
    defaultFile,
  );
  const rootCertFile = rootCertSetting ?? defaultFile('root.crt');
  const verifying = sslmode === 'verify-ca' || sslmode === 'verify-full';
  let rootCert: string | undefined;
  let ssl: ConnectionOptions;
  if (rootCertFile === 'system') {
    // Node's trusted roots: its Mozilla bundle, NODE_EXTRA_CA_CERTS, or the operating
    // system's store when node runs with --use-openssl-ca.
    rootCert = 'system';
    ssl = { ...clientCert };
  } else if (sslmode !== 'no-verify' && existsSync(rootCertFile)) {
    // libpq checks the chain whenever the root certificate file exists, so `require` (and
    // `prefer`) then behave as verify-ca.
    rootCert = rootCertFile;
    ssl = { ...clientCert, ca: readFileSync(rootCertFile, 'utf8') };
    // verify-full alone checks the host name.
    if (sslmode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  } else if (verifying) {
    throw new PgferryError(
      `root certificate file "${rootCertFile}" does not exist (sslmode=${sslmode}): provide the file, ` +
        `use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification`,
    );
  } else {
    ssl = { ...clientCert, rejectUnauthorized: false };
  }

  // `allow` starts without TLS and `prefer` with it; the other way is their fallback.
  if (sslmode === 'allow')
    return { config: { ...base, ssl: false }, fallback: { ...base, ssl }, sslmode, rootCert, address: where };
  if (sslmode === 'prefer')
    return { config: { ...base, ssl }, fallback: { ...base, ssl: false }, sslmode, rootCert, address: where };
  return { config: { ...base, ssl }, sslmode, rootCert, address: where };
}

/** The URL without its TLS parameters, and those parameters. */
function splitTlsParameters(url: string): { url: string; params: URLSearchParams } {
  const start = url.indexOf('?');
  if (start < 0) return { url, params: new URLSearchParams() };
  const end = url.indexOf('#', start);
  const query = new URLSearchParams(url.slice(start + 1, end < 0 ? undefined : end));
  const params = new URLSearchParams();
  for (const name of TLS_PARAMETERS) {
    const value = query.get(name);
    if (value !== null) params.set(name, value);
    query.delete(name);
  }
  const rest = query.toString();
  return { url: url.slice(0, start) + (rest ? `?${rest}` : ''), params };
}

/** `ssl=true` is libpq's sslmode=require (a JDBC habit it accepts); the others node-postgres's. */
function sslParameter(value: string | null): string | undefined {
  if (value === 'true' || value === '1') return 'require';
  if (value === 'false' || value === '0') return 'disable';
  if (value === 'no-verify') return 'no-verify';
  return undefined;
}

function readSslMode(value: string | undefined, rootCert: string | undefined): SslMode {
  // libpq 16: sslrootcert=system makes verify-full the default.
  if (!value) return rootCert === 'system' ? 'verify-full' : 'prefer';
  if ((SSL_MODES as readonly string[]).includes(value)) return value as SslMode;
  throw new PgferryError(`invalid sslmode value: "${value}" (use one of ${SSL_MODES.join(', ')})`);
}

/**
 * The client certificate and its key, as libpq loads them: the certificate only when its file
 * exists (named or the default), and then the key must exist and be private.
 */
function clientCertificate(
  certFile: string,
  keySetting: string | undefined,
  defaultFile: (name: string) => string,
): { cert?: string; key?: string } {
  if (!existsSync(certFile)) return {};
  const keyFile = keySetting ?? defaultFile('postgresql.key');
  if (!existsSync(keyFile))
    throw new PgferryError(`certificate present, but not private key file "${keyFile}" (set sslkey)`);
  const { uid, mode } = statSync(keyFile);
  const ownedByMe = uid === process.getuid?.();
  if ((ownedByMe && mode & 0o077) || (uid === 0 && !ownedByMe && mode & 0o037))
    throw new PgferryError(
      `private key file "${keyFile}" has group or world access; file must have permissions u=rw (0600) ` +
        `or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root`,
    );
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
