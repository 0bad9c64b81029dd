import type pg from 'pg';

import { detectPoolerMode } from '../db/pooler-mode.js';
import { type DoctorFinding, fail, ok, warn } from './finding.js';

/** Whether each connection keeps its session: a transaction-mode pooler breaks pgferry. */
export async function poolerChecks(pool: pg.Pool): Promise<DoctorFinding[]> {
  const report = await detectPoolerMode(pool);
  if (report.mode === 'session') return [ok('pooler', `${report.server}: every connection keeps its session`)];
  return [
    fail(
      'pooler',
      `${report.server} goes through a pooler in ${report.mode} mode (${report.explanation}); pgferry needs a session ` +
        '(advisory locks, LISTEN)',
      "connect to the pooler's session-mode port, or to PostgreSQL directly (docs/managed-postgresql.md)",
    ),
  ];
}

/**
 * Whether the connection is encrypted, as the server sees it (pg_stat_ssl), and whether the
 * server's certificate was checked, as the pool's TLS options say (connection-config.ts).
 */
export async function tlsChecks(client: pg.ClientBase, options: pg.PoolConfig): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{ ssl: boolean | null; version: string | null; local: boolean }>(
    `select s.ssl, s.version, inet_client_addr() is null or host(inet_client_addr()) in ('127.0.0.1', '::1') as local
       from pg_stat_ssl s where s.pid = pg_backend_pid()`,
  );
  const row = rows[0];
  const ssl = typeof options.ssl === 'object' ? options.ssl : undefined;
  if (row?.ssl) {
    if (ssl?.rejectUnauthorized === false && !row.local)
      return [
        warn(
          'tls',
          `encrypted (${row.version}), but the server's certificate is not checked (sslmode prefer or require ` +
            'without a root certificate): anyone in between could pose as the server',
          'use sslmode=verify-full, with sslrootcert=<the CA file> or sslrootcert=system',
        ),
      ];
    const checked = ssl?.checkServerIdentity ? ', the certificate checked against the CA, not the host name' : '';
    return [ok('tls', `encrypted (${row.version})${ssl?.rejectUnauthorized === false ? '' : checked}`)];
  }
  if (row?.local) return [ok('tls', 'not encrypted, on this machine (a local socket or loopback)')];
  return [
    warn(
      'tls',
      'the connection is not encrypted: passwords and rows cross the network in clear text',
      'add sslmode=verify-full (and sslrootcert=… when the CA is not a public one) to the connection URL',
    ),
  ];
}
