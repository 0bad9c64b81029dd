import type pg from 'pg';

import { type DoctorFinding, ok, warn } from './finding.js';

/** Whether the connection is encrypted, as the server sees it (pg_stat_ssl). */
export async function tlsChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{ ssl: boolean | null; version: string | null; local: boolean }>(
    `select s.ssl, s.version, inet_client_addr() is null or host(inet_client_addr()) in ('127.0.0.1', '::1') as local
       from pg_stat_ssl s where s.pid = pg_backend_pid()`,
  );
  const row = rows[0];
  if (row?.ssl) return [ok('tls', `encrypted (${row.version})`)];
  if (row?.local) return [ok('tls', 'not encrypted, on this machine (a local socket or loopback)')];
  return [
    warn(
      'tls',
      'the connection is not encrypted: passwords and rows cross the network in clear text',
      'add sslmode=verify-full (and sslrootcert=… when the CA is not a public one) to the connection URL',
    ),
  ];
}
