import pg from 'pg';

import { type DoctorFinding, fail, ok, warn } from './finding.js';

/** MERGE, which promotion relies on, came with PostgreSQL 15. */
export const MINIMUM_SERVER_VERSION = 150000;

/** Per pgferry process: a load's parallel COPY streams, its claim, and one more. */
const CONNECTIONS_PER_PROCESS = 12;

/** The server: its version, the one language pgferry needs, its connection room. */
export async function serverChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{
    version: string;
    num: number;
    plpgsql: boolean;
    max_connections: number;
    reserved: number;
    used: number;
  }>(`select current_setting('server_version') as version,
             current_setting('server_version_num')::int as num,
             exists (select from pg_language where lanname = 'plpgsql') as plpgsql,
             current_setting('max_connections')::int as max_connections,
             current_setting('superuser_reserved_connections')::int as reserved,
             (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as used`);
  const server = rows[0];
  const findings: DoctorFinding[] = [];
  findings.push(
    server.num >= MINIMUM_SERVER_VERSION
      ? ok('server', `PostgreSQL ${server.version}`)
      : fail(
          'server',
          `PostgreSQL ${server.version} is too old: pgferry needs 15 or later (MERGE)`,
          'upgrade the server',
        ),
  );
  // pgferry needs no extension; its SQL functions are written in PL/pgSQL, which every
  // managed service has (it is installed in every new database unless someone dropped it).
  findings.push(
    server.plpgsql
      ? ok('extensions', 'none needed (PL/pgSQL is installed)')
      : fail(
          'extensions',
          'PL/pgSQL is not installed in this database',
          'create extension plpgsql (as the database owner)',
        ),
  );
  const free = server.max_connections - server.reserved - server.used;
  findings.push(
    free >= CONNECTIONS_PER_PROCESS
      ? ok('connections', `${free} of ${server.max_connections} connections free`)
      : warn(
          'connections',
          `only ${free} of ${server.max_connections} connections free; a load uses up to ${CONNECTIONS_PER_PROCESS}`,
          'raise max_connections, or close idle sessions',
        ),
  );
  return findings;
}

/** Timeouts that cut a long load short: set for the role, the database or the server. */
export async function timeoutChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{ name: string; setting: string; unit: string | null; source: string }>(
    `select name, setting, unit, source from pg_settings
      where name in ('statement_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout',
                     'lock_timeout', 'transaction_timeout')
        and setting <> '0'
      order by name`,
  );
  if (rows.length === 0) return [ok('timeouts', 'no statement, lock or idle timeout is set')];
  const { rows: who } = await client.query<{ role: string }>('select current_user as role');
  return rows.map((row) =>
    warn(
      'timeouts',
      `${row.name} is ${row.setting}${row.unit ?? ''} (from ${row.source}): a long load or an idle claim ` +
        'connection can be cut off midway',
      `alter role ${pg.escapeIdentifier(who[0].role)} set ${row.name} = 0 (a role may set its own defaults)`,
    ),
  );
}
