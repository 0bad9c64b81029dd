import os from 'node:os';

import type pg from 'pg';

/** One line of `ferry.audit`: who did what, when, and how it ended. */
export interface AuditEntry {
  id: number;
  at: Date;
  osUser: string | null;
  dbRole: string;
  command: string;
  tenant: string | null;
  loadId: number | null;
  outcome: string;
  details: Record<string, unknown>;
}

/** Writes one audit line (with the OS user and, by default, the database role). */
export async function recordAudit(
  db: pg.Pool | pg.ClientBase,
  entry: { command: string; tenant?: string; loadId?: number; outcome: string; details?: Record<string, unknown> },
): Promise<void> {
  await db.query(
    `insert into ferry.audit (os_user, command, tenant, load_id, outcome, details) values ($1, $2, $3, $4, $5, $6)`,
    [
      os.userInfo().username,
      entry.command,
      entry.tenant ?? null,
      entry.loadId ?? null,
      entry.outcome,
      JSON.stringify(entry.details ?? {}),
    ],
  );
}

/**
 * The audit log, newest first.
 *
 * @example
 *   await listAudit(pool, { tenant: 'acme', since: new Date(Date.now() - 86_400_000) });
 */
export async function listAudit(
  pool: pg.Pool,
  options: { tenant?: string; since?: Date; limit?: number } = {},
): Promise<AuditEntry[]> {
  const { rows } = await pool.query(
    `select id, at, os_user, db_role, command, tenant, load_id, outcome, details
     from ferry.audit
     where ($1::text is null or tenant = $1) and ($2::timestamptz is null or at >= $2)
     order by at desc, id desc
     limit $3`,
    [options.tenant ?? null, options.since ?? null, options.limit ?? 50],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    at: r.at,
    osUser: r.os_user,
    dbRole: r.db_role,
    command: r.command,
    tenant: r.tenant,
    loadId: r.load_id === null ? null : Number(r.load_id),
    outcome: r.outcome,
    details: r.details,
  }));
}
