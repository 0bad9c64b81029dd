import type pg from 'pg';

import { poolerChecks, tlsChecks } from './connection-checks.js';
import type { DoctorFinding } from './finding.js';
import { databaseChecks, roleChecks } from './privilege-checks.js';
import { schemaChecks, tableChecks } from './schema-checks.js';
import { serverChecks, timeoutChecks } from './server-checks.js';

export type { DoctorFinding } from './finding.js';

/**
 * `pgferry doctor`: what the current role and server lack for pgferry, found before anything
 * fails halfway. Reads only; what it must try (creating a role) it does in a transaction that
 * is rolled back. Open the database with `openDatabase({ migrate: false })`: it checks whether
 * the schema can be installed, and must not install it; and with `requireSession: false`, so
 * that a transaction-mode pooler is reported rather than refused.
 *
 * @example
 *   const findings = await doctor(db.pool);
 *   const broken = findings.filter((f) => f.status === 'fail');
 */
export async function doctor(pool: pg.Pool): Promise<DoctorFinding[]> {
  // Asked first, while no connection of the pool is checked out.
  const pooler = await poolerChecks(pool);
  const client = await pool.connect();
  try {
    const connection = [...(await serverChecks(client)), ...(await tlsChecks(client, pool.options)), ...pooler];
    // The other checks try things in a rolled-back transaction, which such a pooler refuses.
    if (pooler.some((f) => f.status === 'fail' && /in statement mode/.test(f.message))) return connection;
    return [
      ...connection,
      ...(await roleChecks(client)),
      ...(await databaseChecks(client)),
      ...(await schemaChecks(client)),
      ...(await tableChecks(client)),
      ...(await timeoutChecks(client)),
    ];
  } finally {
    client.release();
  }
}
