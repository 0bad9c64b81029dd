// sslmode, sslrootcert, sslcert and sslkey mean what they mean to libpq and psql, from a URL
// and from the PG* variables: against a second embedded PostgreSQL with ssl=on and
// certificates this file makes, and against the suite's own server, which offers no TLS.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { connectionSettings } from '../src/db/connection-config.js';
import { openDatabase } from '../src/db/database.js';
import { type EmbeddedServer, startEmbeddedServer } from '../src/db/embedded-server.js';
import { doctor } from '../src/doctor/doctor.js';
import { PgferryError } from '../src/errors.js';
import { openPostgresSource } from '../src/sources/database/postgres-source.js';
import { runCli } from './helpers/run-cli.js';
import { makeTestCertificates, opensslMissing, type TestCertificates } from './helpers/tls-certificates.js';
import { until } from './helpers/until.js';

const CERT_USER = 'pgferry_cert_user';
const TLS_ONLY_USER = 'pgferry_tls_only';
const PLAIN_ONLY_USER = 'pgferry_plain_only';

const missing = opensslMissing();
if (missing) console.warn(`tls.sslmodes: skipped: ${missing}`);

describe.skipIf(missing)('sslmode as libpq reads it', () => {
  let dir: string;
  let certs: TestCertificates;
  let server: EmbeddedServer;
  /** The TLS server's superuser URL, host 127.0.0.1. */
  let tlsUrl: URL;
  /** A HOME without ~/.postgresql, so that no default file of this machine's counts. */
  let home: string;
  /** Whether the suite's server refuses TLS, as CI's and the embedded one do. */
  let plainServer = true;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgferry-tls-'));
    // As root, the server runs as the postgres OS user, which must be able to enter it.
    chmodSync(dir, 0o755);
    home = path.join(dir, 'home');
    mkdirSync(home);
    certs = makeTestCertificates(path.join(dir, 'certs'), CERT_USER);
    chmodSync(certs.client.key, 0o600);
    server = await startEmbeddedServer({ dir: path.join(dir, 'server'), ephemeral: true });
    tlsUrl = new URL(server.url);
    await turnTlsOn(server, path.join(dir, 'server', 'data'), certs);

    const probe = new pg.Client({ connectionString: inject('adminUrl'), ssl: { rejectUnauthorized: false } });
    plainServer = await probe.connect().then(
      () => false,
      (error: Error) => error.message === 'The server does not support SSL connections',
    );
    await probe.end().catch(() => {});
    if (!plainServer) console.warn('tls.sslmodes: the suite server offers TLS: its no-TLS cases are skipped');
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The TLS server's URL with `host` and these parameters. */
  function url(params: Record<string, string>, host = '127.0.0.1', user?: string): string {
    const result = new URL(tlsUrl);
    result.hostname = host;
    if (user) {
      result.username = user;
      result.password = user === CERT_USER ? '' : user;
    }
    for (const [name, value] of Object.entries(params)) result.searchParams.set(name, value);
    return result.toString();
  }

  function plainUrl(params: Record<string, string>): string {
    const result = new URL(inject('adminUrl'));
    for (const [name, value] of Object.entries(params)) result.searchParams.set(name, value);
    return result.toString();
  }

  /** Whether openDatabase's connection, opened as given, uses TLS. */
  async function usesTls(options: { url?: string; env?: NodeJS.ProcessEnv }): Promise<boolean> {
    const db = await openDatabase({ ...options, env: { HOME: home, ...options.env }, migrate: false });
    try {
      const { rows } = await db.pool.query<{ ssl: boolean }>(
        'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
      );
      return rows[0].ssl;
    } finally {
      await db.close();
    }
  }

  /** The error openDatabase fails with; it must be a one-line PgferryError. */
  async function refusal(options: { url?: string; env?: NodeJS.ProcessEnv }): Promise<string> {
    const error = await usesTls(options).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgferryError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }

  describe('disable', () => {
    it('connects without TLS to a server that offers it', async () => {
      expect(await usesTls({ url: url({ sslmode: 'disable' }) })).toBe(false);
    });
  });

  describe('prefer, the default', () => {
    it('uses TLS when the server offers it, nothing verified', async () => {
      expect(await usesTls({ url: url({ sslmode: 'prefer' }) })).toBe(true);
      expect(await usesTls({ url: url({}) })).toBe(true);
    });

    it('falls back to no TLS when pg_hba.conf refuses the connection with it', async () => {
      expect(await usesTls({ url: url({ sslmode: 'prefer' }, '127.0.0.1', PLAIN_ONLY_USER) })).toBe(false);
    });

    it('falls back to no TLS on a server that refuses it', async ({ skip }) => {
      if (!plainServer) skip();
      expect(await usesTls({ url: plainUrl({ sslmode: 'prefer' }) })).toBe(false);
      expect(await usesTls({ url: plainUrl({}) })).toBe(false);
    });
  });

  describe('allow', () => {
    it('connects without TLS when the server lets it', async () => {
      expect(await usesTls({ url: url({ sslmode: 'allow' }) })).toBe(false);
    });

    it('uses TLS when pg_hba.conf refuses the connection without it', async () => {
      expect(await usesTls({ url: url({ sslmode: 'allow' }, '127.0.0.1', TLS_ONLY_USER) })).toBe(true);
    });
  });

  describe('require', () => {
    it('uses TLS without verifying the certificate, by any host name', async () => {
      expect(await usesTls({ url: url({ sslmode: 'require' }) })).toBe(true);
      expect(await usesTls({ url: url({ sslmode: 'require' }, 'localhost') })).toBe(true);
      // node-postgres's ssl=true is libpq's sslmode=require.
      expect(await usesTls({ url: url({ ssl: 'true' }) })).toBe(true);
    });

    it('refuses a server without TLS, in one line saying what to do', async ({ skip }) => {
      if (!plainServer) skip();
      const message = await refusal({ url: plainUrl({ sslmode: 'require' }) });
      expect(message).toMatch(/with sslmode=require: the server does not accept TLS connections; .*sslmode=prefer/);
    });

    it('verifies the chain (as verify-ca) when sslrootcert names a file that exists', async () => {
      expect(await usesTls({ url: url({ sslmode: 'require', sslrootcert: certs.ca.cert }) })).toBe(true);
      const message = await refusal({ url: url({ sslmode: 'require', sslrootcert: certs.otherCa.cert }) });
      expect(message).toContain(
        `with sslmode=require: the server's certificate is not signed by the root certificate "${certs.otherCa.cert}"`,
      );
      // A file that does not exist: nothing to verify against, as libpq.
      expect(await usesTls({ url: url({ sslmode: 'require', sslrootcert: path.join(dir, 'none.crt') }) })).toBe(true);
    });

    it('verifies against ~/.postgresql/root.crt when it exists, as libpq', async () => {
      const otherHome = path.join(dir, 'home-with-root');
      mkdirSync(path.join(otherHome, '.postgresql'), { recursive: true });
      copyFileSync(certs.otherCa.cert, path.join(otherHome, '.postgresql', 'root.crt'));
      const message = await refusal({ url: url({ sslmode: 'require' }), env: { HOME: otherHome } });
      expect(message).toContain(path.join(otherHome, '.postgresql', 'root.crt'));
      copyFileSync(certs.ca.cert, path.join(otherHome, '.postgresql', 'root.crt'));
      expect(await usesTls({ url: url({ sslmode: 'require' }), env: { HOME: otherHome } })).toBe(true);
    });
  });

  describe('pgferry doctor', () => {
    it('tells how the connection is encrypted, and whether the certificate was checked', async () => {
      const tlsFinding = async (u: string) => {
        const db = await openDatabase({ url: u, env: { HOME: home }, migrate: false });
        try {
          return (await doctor(db.pool)).find((f) => f.check === 'tls')!;
        } finally {
          await db.close();
        }
      };
      const full = await tlsFinding(url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }, 'localhost'));
      expect(full).toMatchObject({ status: 'ok', message: expect.stringMatching(/^encrypted \(TLSv1\.[23]\)$/) });
      const ca = await tlsFinding(url({ sslmode: 'verify-ca', sslrootcert: certs.ca.cert }));
      expect(ca.message).toMatch(
        /^encrypted \(TLSv1\.[23]\), the certificate checked against the CA, not the host name$/,
      );
      // Not checked, but on this machine (loopback): no one in between to pose as the server.
      expect(await tlsFinding(url({ sslmode: 'require' }))).toMatchObject({ status: 'ok' });
    });
  });

  describe('verify-ca', () => {
    it('accepts the right CA, whatever the host name', async () => {
      // The certificate is for localhost alone; 127.0.0.1 is not in it.
      expect(await usesTls({ url: url({ sslmode: 'verify-ca', sslrootcert: certs.ca.cert }) })).toBe(true);
    });

    it('refuses a certificate its CA did not sign', async () => {
      const message = await refusal({ url: url({ sslmode: 'verify-ca', sslrootcert: certs.otherCa.cert }) });
      expect(message).toMatch(
        /^cannot connect to 127\.0\.0\.1:\d+ with sslmode=verify-ca: the server's certificate is not signed by/,
      );
      expect(message).toContain('sslrootcert');
    });

    it('names the root certificate file that does not exist', async () => {
      const file = path.join(dir, 'missing.crt');
      expect(await refusal({ url: url({ sslmode: 'verify-ca', sslrootcert: file }) })).toBe(
        `root certificate file "${file}" does not exist (sslmode=verify-ca): provide the file, use the system's ` +
          `trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification`,
      );
      // Without sslrootcert: the default, ~/.postgresql/root.crt.
      expect(await refusal({ url: url({ sslmode: 'verify-ca' }) })).toContain(
        `"${path.join(home, '.postgresql', 'root.crt')}" does not exist`,
      );
    });
  });

  describe('verify-full', () => {
    it("accepts the right CA and the certificate's host name", async () => {
      expect(await usesTls({ url: url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }, 'localhost') })).toBe(
        true,
      );
    });

    it('refuses a host name the certificate does not hold', async () => {
      const message = await refusal({ url: url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }) });
      expect(message).toMatch(
        /with sslmode=verify-full: the server's certificate is not for this host .*sslmode=verify-ca/,
      );
    });

    it('refuses a certificate its CA did not sign', async () => {
      const message = await refusal({
        url: url({ sslmode: 'verify-full', sslrootcert: certs.otherCa.cert }, 'localhost'),
      });
      expect(message).toContain(`not signed by the root certificate "${certs.otherCa.cert}"`);
    });

    it('sslrootcert=system: the system roots (which do not hold the test CA), and verify-full alone', async () => {
      expect(await refusal({ url: url({ sslrootcert: 'system' }, 'localhost') })).toMatch(
        /with sslmode=verify-full: the server's certificate is not signed by the system's trusted roots/,
      );
      expect(await refusal({ url: url({ sslmode: 'require', sslrootcert: 'system' }) })).toBe(
        'weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")',
      );
    });
  });

  describe('client certificate', () => {
    it("is sent from sslcert and sslkey, for pg_hba.conf's cert method", async () => {
      const params = { sslmode: 'verify-full', sslrootcert: certs.ca.cert };
      expect(
        await usesTls({
          url: url({ ...params, sslcert: certs.client.cert, sslkey: certs.client.key }, 'localhost', CERT_USER),
        }),
      ).toBe(true);
      await expect(usesTls({ url: url(params, 'localhost', CERT_USER) })).rejects.toThrow(/certificate/);
    });

    it('is read from ~/.postgresql/postgresql.crt and .key by default, a key with group access refused', async () => {
      const certHome = path.join(dir, 'home-with-cert');
      mkdirSync(path.join(certHome, '.postgresql'), { recursive: true });
      copyFileSync(certs.client.cert, path.join(certHome, '.postgresql', 'postgresql.crt'));
      const key = path.join(certHome, '.postgresql', 'postgresql.key');
      copyFileSync(certs.client.key, key);
      chmodSync(key, 0o600);
      const target = url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }, 'localhost', CERT_USER);
      expect(await usesTls({ url: target, env: { HOME: certHome } })).toBe(true);
      chmodSync(key, 0o640);
      expect(await refusal({ url: target, env: { HOME: certHome } })).toMatch(
        /^private key file ".*postgresql\.key" has group or world access/,
      );
    });
  });

  describe('the PG* variables', () => {
    function pgEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
      return {
        PGHOST: 'localhost',
        PGPORT: tlsUrl.port,
        PGUSER: decodeURIComponent(tlsUrl.username),
        PGPASSWORD: decodeURIComponent(tlsUrl.password),
        PGDATABASE: 'postgres',
        ...extra,
      };
    }

    it('PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY are read as libpq reads them', async () => {
      expect(await usesTls({ env: pgEnv({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.ca.cert }) })).toBe(true);
      expect(await usesTls({ env: pgEnv({ PGSSLMODE: 'disable' }) })).toBe(false);
      expect(await refusal({ env: pgEnv({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.otherCa.cert }) })).toContain(
        'with sslmode=verify-full',
      );
      const asCertUser = pgEnv({
        PGUSER: CERT_USER,
        PGPASSWORD: '',
        PGSSLMODE: 'verify-full',
        PGSSLROOTCERT: certs.ca.cert,
        PGSSLCERT: certs.client.cert,
        PGSSLKEY: certs.client.key,
      });
      expect(await usesTls({ env: asCertUser })).toBe(true);
    });

    it("a URL's parameter wins over its variable, and the variable fills what the URL leaves out", async () => {
      const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.ca.cert };
      expect(await usesTls({ url: url({ sslmode: 'disable' }), env })).toBe(false);
      expect(await usesTls({ url: url({}, 'localhost'), env })).toBe(true);
      expect(await refusal({ url: url({}), env })).toContain('with sslmode=verify-full');
    });
  });

  it("pools and clients made from the pool's options (the worker's, a claim's) connect the same way", async () => {
    const tlsOf = async (client: pg.Pool | pg.Client) =>
      (await client.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0].ssl;
    const cases = [
      { url: url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }, 'localhost'), ssl: true },
      // prefer, settled to no TLS on the first connection
      { url: url({ sslmode: 'prefer' }, '127.0.0.1', PLAIN_ONLY_USER), ssl: false },
    ];
    for (const { url, ssl } of cases) {
      const db = await openDatabase({ url, env: { HOME: home }, migrate: false });
      const copy = new pg.Pool({ ...db.pool.options, max: 1 });
      const client = new pg.Client(db.pool.options);
      try {
        await client.connect();
        expect([await tlsOf(copy), await tlsOf(client)]).toEqual([ssl, ssl]);
      } finally {
        await client.end();
        await copy.end();
        await db.close();
      }
    }
  });

  it('a Unix-domain socket: sslmode is ignored, as libpq (no server of the suite listens on one)', () => {
    const settings = connectionSettings({
      url: 'postgres://app@%2Fvar%2Frun%2Fpostgresql/app?sslmode=verify-full',
      env: { HOME: home },
    });
    expect(settings.config.ssl).toBe(false);
    expect(connectionSettings({ env: { PGHOST: '/tmp', PGSSLMODE: 'require', HOME: home } }).config.ssl).toBe(false);
  });

  it('an invalid sslmode is refused in one line', async () => {
    expect(await refusal({ url: url({ sslmode: 'verify' }) })).toBe(
      'invalid sslmode value: "verify" (use one of disable, allow, prefer, require, verify-ca, verify-full, no-verify)',
    );
  });

  it('a PostgreSQL source database reads its URL the same way', async () => {
    const good = await openPostgresSource(url({ sslmode: 'verify-ca', sslrootcert: certs.ca.cert }), 'tls');
    try {
      const { rows } = await good.query<{ ssl: boolean }>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      expect(rows[0].ssl).toBe(true);
    } finally {
      await good.end();
    }
    await expect(
      openPostgresSource(url({ sslmode: 'verify-full', sslrootcert: certs.ca.cert }), 'tls'),
    ).rejects.toThrow(
      /^cannot read the source tls: cannot connect to 127\.0\.0\.1:\d+ with sslmode=verify-full: the server's certificate is not for this host/,
    );
  });

  describe('pgferry migrate', () => {
    it('installs the schema over verify-full, from the PG* variables', async () => {
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query('create database pgferry_tls');
      await admin.end();
      const run = await runCli(['migrate'], {
        env: {
          HOME: home,
          PGHOST: 'localhost',
          PGPORT: tlsUrl.port,
          PGUSER: decodeURIComponent(tlsUrl.username),
          PGPASSWORD: decodeURIComponent(tlsUrl.password),
          PGDATABASE: 'pgferry_tls',
          PGSSLMODE: 'verify-full',
          PGSSLROOTCERT: certs.ca.cert,
        },
      });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('migrations applied');
    });

    it('says in one line why TLS failed, and exits 2', async () => {
      const run = await runCli(
        ['migrate', '--database-url', url({ sslmode: 'verify-full', sslrootcert: certs.otherCa.cert }, 'localhost')],
        { env: { HOME: home } },
      );
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(
        /^pgferry: cannot connect to localhost:\d+ with sslmode=verify-full: the server's certificate is not signed by the root certificate/,
      );
    });
  });
});

/**
 * ssl=on with the server certificate, the CA for client certificates, and a pg_hba.conf where
 * CERT_USER logs in by certificate and TLS_ONLY_USER with TLS alone; then waits until TLS works.
 */
async function turnTlsOn(server: EmbeddedServer, dataDir: string, certs: TestCertificates): Promise<void> {
  // The server reads its key only if the key is its own and private (the data directory's
  // owner: the postgres OS user when the tests run as root).
  const owner = statSync(dataDir);
  const files = { cert: 'test-server.crt', key: 'test-server.key', ca: 'test-ca.crt' };
  copyFileSync(certs.server.cert, path.join(dataDir, files.cert));
  copyFileSync(certs.server.key, path.join(dataDir, files.key));
  copyFileSync(certs.ca.cert, path.join(dataDir, files.ca));
  for (const file of Object.values(files)) {
    await chown(path.join(dataDir, file), owner.uid, owner.gid);
    chmodSync(path.join(dataDir, file), 0o600);
  }
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ hba_file: string }>('show hba_file');
    writeFileSync(
      rows[0].hba_file,
      [
        `hostssl all ${CERT_USER} 127.0.0.1/32 cert`,
        `hostnossl all ${TLS_ONLY_USER} 127.0.0.1/32 reject`,
        `hostssl all ${PLAIN_ONLY_USER} 127.0.0.1/32 reject`,
        'host all all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    await admin.query(`create role ${CERT_USER} login`);
    await admin.query(`create role ${TLS_ONLY_USER} login password '${TLS_ONLY_USER}'`);
    await admin.query(`create role ${PLAIN_ONLY_USER} login password '${PLAIN_ONLY_USER}'`);
    await admin.query(`alter system set ssl_cert_file = '${files.cert}'`);
    await admin.query(`alter system set ssl_key_file = '${files.key}'`);
    await admin.query(`alter system set ssl_ca_file = '${files.ca}'`);
    await admin.query('alter system set ssl = on');
    await admin.query('select pg_reload_conf()');
  } finally {
    await admin.end();
  }
  await until(async () => {
    const client = new pg.Client({ connectionString: server.url, ssl: { rejectUnauthorized: false } });
    try {
      await client.connect();
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  });
}
