import pg from 'pg';

import { readFunctionFiles, readMigrations } from '../db/migrate.js';
import { type DoctorFinding, fail, ok } from './finding.js';

/** Whether the current role may read pgferry's catalog (true when there is none yet). */
const USABLE = `coalesce((select has_schema_privilege(oid, 'USAGE') and pg_has_role(nspowner, 'USAGE')
                            from pg_namespace where nspname = 'ferry'), true)`;

/** Whether ferry.<name> exists, asked so that it cannot fail (to_regclass needs USAGE on ferry). */
const ferryTableExists = (name: string) =>
  `exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'ferry' and c.relname = '${name}')`;

/**
 * The ferry schema: installed or not, up to date or not, and whether this role may use it
 * (only its owner, or a member of the owner's role, may: the catalog has no other grants).
 */
export async function schemaChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{
    installed: boolean;
    owner: string | null;
    usable: boolean;
    role: string;
  }>(
    `select ${ferryTableExists('schema_migrations')} as installed,
            (select nspowner::regrole::text from pg_namespace where nspname = 'ferry') as owner,
            ${USABLE} as usable, current_user as role`,
  );
  const { installed, owner, usable, role } = rows[0];
  if (!owner) return [ok('schema', 'not installed yet: the first command installs it')];
  // pgferry's catalog is its owner's: another role uses it as a member of that role.
  if (!usable)
    return [
      fail(
        'schema',
        `installed by ${owner}, and role ${role} may not use it`,
        `connect as ${owner}, or as an admin role: grant ${pg.escapeIdentifier(owner)} to ${pg.escapeIdentifier(role)}`,
      ),
    ];
  if (!installed) return [ok('schema', 'not installed yet: the first command installs it')];
  const migrations = await client.query<{ name: string }>('select name from ferry.schema_migrations order by id');
  const functions = await client.query<{ name: string; sha256: string }>(
    'select name, sha256 from ferry.schema_functions',
  );
  const installedFunctions = new Map(functions.rows.map((r) => [r.name, r.sha256]));
  const pendingMigrations = readMigrations().length - migrations.rows.length;
  const pendingFunctions = readFunctionFiles().filter((f) => installedFunctions.get(f.name) !== f.sha256).length;
  const pending = pendingMigrations > 0 || pendingFunctions > 0;
  if (!pending) return [ok('schema', `installed and up to date (owned by ${owner})`)];
  // Usable means a member of the owner's role, which may also upgrade it.
  return [
    ok(
      'schema',
      `installed; ${pendingMigrations} migration(s) and ${pendingFunctions} function file(s) to apply: the next command applies them`,
    ),
  ];
}

/**
 * What loads need on what pgferry already set up: the protected tables' owners (RLS policies
 * and grants are the owner's to change) and the tenant roles (a load acts as its tenant).
 */
export async function tableChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows: installed } = await client.query<{ ok: boolean; usable: boolean }>(
    `select ${ferryTableExists('protected_tables')} as ok,
            ${USABLE} as usable`,
  );
  // The schema check names a catalog the role cannot read.
  if (!installed[0].usable) return [];
  if (!installed[0].ok)
    return [ok('tables', "no protected table yet: `tenant protect` needs the table's owner (or a member of it)")];
  const { rows: role } = await client.query<{ role: string }>('select current_user as role');
  const me = pg.escapeIdentifier(role[0].role);
  const { rows: tables } = await client.query<{ name: string; owner: string; mine: boolean | null }>(
    `select format('%I.%I', p.schema_name, p.table_name) as name, c.relowner::regrole::text as owner,
            pg_has_role(c.relowner, 'USAGE') as mine
       from ferry.protected_tables p
       left join pg_namespace n on n.nspname = p.schema_name
       left join pg_class c on c.relnamespace = n.oid and c.relname = p.table_name
      order by 1`,
  );
  const { rows: tenants } = await client.query<{ slug: string; role_name: string; exists: boolean; member: boolean }>(
    `select t.slug, t.role_name, r.oid is not null as exists,
            -- SET ROLE, as a load needs: on 16+ a creator's ADMIN OPTION alone makes it a
            -- member without it.
            case when current_setting('server_version_num')::int >= 160000 then pg_has_role(r.oid, 'SET')
                 else pg_has_role(r.oid, 'MEMBER') end as member
       from ferry.tenants t left join pg_roles r on r.rolname = t.role_name
      order by t.slug`,
  );
  const findings: DoctorFinding[] = [];
  for (const table of tables) {
    if (table.owner === null)
      findings.push(
        fail('tables', `protected table ${table.name} is missing`, 'recreate it: pgferry still has it as protected'),
      );
    else if (!table.mine)
      findings.push(
        fail(
          'tables',
          `protected table ${table.name} is owned by ${table.owner}, and role ${role[0].role} is not a member of it`,
          `as an admin role: grant ${pg.escapeIdentifier(table.owner)} to ${me}`,
        ),
      );
  }
  for (const tenant of tenants) {
    if (!tenant.exists)
      findings.push(
        fail(
          'tenants',
          `the role ${tenant.role_name} of tenant ${tenant.slug} is missing`,
          'restore it, or remove the tenant',
        ),
      );
    else if (!tenant.member)
      findings.push(
        fail(
          'tenants',
          `role ${role[0].role} cannot act as tenant ${tenant.slug} (role ${tenant.role_name})`,
          `as the role that added it (or an admin role): grant ${pg.escapeIdentifier(tenant.role_name)} to ${me}`,
        ),
      );
  }
  if (findings.length === 0)
    findings.push(
      ok('tables', `${tables.length} protected table(s) and ${tenants.length} tenant(s) usable by ${role[0].role}`),
    );
  return findings;
}
