import type pg from 'pg';

import { recordAudit } from './audit.js';
import { asUserError, isDatabaseError, PgferryError } from './errors.js';

export interface Tenant {
  slug: string;
  tenantKey: string;
  roleName: string;
  schemaName: string;
  createdAt: Date;
}

export interface ProtectOptions {
  /** Column holding the tenant. (Default: `tenant_id`) */
  column?: string;
  /** Application roles that keep full access through a pass-through policy. */
  keepRoles?: string[];
  /** Enable RLS even though roles named by the refusal lose access. (Default: false) */
  lockOut?: boolean;
}

/**
 * Adds a tenant: its role, its staging schema and its policies on every protected table.
 *
 * @example
 *   await addTenant(pool, 'acme');             // writes 'acme' into tenant_id
 *   await addTenant(pool, 'globex', '42');     // writes 42 (cast to the column's type)
 */
export async function addTenant(pool: pg.Pool, slug: string, key?: string): Promise<Tenant> {
  try {
    const rows = await retryDeadlocks(() => pool.query('select * from ferry.add_tenant($1, $2)', [slug, key ?? null]));
    const tenant = toTenant(rows[0]);
    await recordAudit(pool, {
      command: 'tenant add',
      tenant: slug,
      outcome: 'added',
      details: { key: tenant.tenantKey },
    });
    return tenant;
  } catch (error) {
    await auditFailure(pool, 'tenant add', slug, error);
    throw asUserError(error);
  }
}

/**
 * Roles are the whole server's, not one database's: tenants added at the same moment in two
 * databases of one server can deadlock on the role catalog. The loser is simply tried again.
 */
async function retryDeadlocks(query: () => Promise<pg.QueryResult>): Promise<pg.QueryResult['rows']> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await query()).rows;
    } catch (error) {
      if (!isDatabaseError(error) || error.code !== '40P01' || attempt >= 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

export async function listTenants(pool: pg.Pool): Promise<Tenant[]> {
  const { rows } = await pool.query('select * from ferry.tenants order by slug');
  return rows.map(toTenant);
}

/**
 * Puts an application table under row-level security for pgferry's tenants, refusing (and
 * naming them) when roles of the application would lose access, unless kept or accepted.
 *
 * @example
 *   await protectTable(pool, 'app.products', { keepRoles: ['app_rw'] });
 */
export async function protectTable(pool: pg.Pool, table: string, options: ProtectOptions = {}) {
  try {
    const { rows: found } = await pool.query('select to_regclass($1) is not null as ok', [table]);
    if (!found[0].ok) throw new PgferryError(`table ${table} does not exist`);
    const { rows } = await pool.query(
      `select schema_name::text, table_name::text, tenant_column::text, passthrough_roles::text[]
       from ferry.protect_table(to_regclass($1), $2, $3, $4)`,
      [table, options.column ?? 'tenant_id', options.keepRoles ?? [], options.lockOut ?? false],
    );
    const protectedTable = rows[0] as {
      schema_name: string;
      table_name: string;
      tenant_column: string;
      passthrough_roles: string[];
    };
    await recordAudit(pool, {
      command: 'tenant protect',
      outcome: 'protected',
      details: { table, ...protectedTable, lockOut: options.lockOut ?? false },
    });
    return protectedTable;
  } catch (error) {
    await auditFailure(pool, 'tenant protect', undefined, error, { table });
    throw asUserError(error);
  }
}

function toTenant(row: Record<string, unknown>): Tenant {
  return {
    slug: row.slug as string,
    tenantKey: row.tenant_key as string,
    roleName: row.role_name as string,
    schemaName: row.schema_name as string,
    createdAt: row.created_at as Date,
  };
}

/** A refused or failed change is audited too; the audit itself failing must not hide the error. */
async function auditFailure(
  pool: pg.Pool,
  command: string,
  tenant: string | undefined,
  error: unknown,
  details: Record<string, unknown> = {},
): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  await recordAudit(pool, { command, tenant, outcome: 'failed', details: { ...details, error: message } }).catch(
    () => {},
  );
}
