import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { isDatabaseError } from '../errors.js';
import { type DoctorFinding, fail, ok } from './finding.js';

const MANAGED_DOCS = 'docs/managed-postgresql.md';

/** The current role: what it is, and whether it can make and use tenant roles. */
export async function roleChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{ role: string; superuser: boolean; createrole: boolean }>(
    `select current_user as role, rolsuper as superuser, rolcreaterole as createrole
       from pg_roles where rolname = current_user`,
  );
  const { role, superuser } = rows[0];
  const name = pg.escapeIdentifier(role);
  const findings: DoctorFinding[] = [
    ok(
      'role',
      `${role}${superuser ? ' (a superuser: pgferry needs less, see ' + MANAGED_DOCS + ')' : ', not a superuser'}`,
    ),
  ];
  const probe = await probeTenantRole(client, superuser);
  if (probe === 'ok') findings.push(ok('createrole', 'can create tenant roles and act as them'));
  else if (probe === 'create')
    findings.push(
      fail(
        'createrole',
        `role ${role} cannot create roles: every tenant is a role of its own`,
        `as an admin role: alter role ${name} createrole (or use the provider's admin role: ${MANAGED_DOCS})`,
      ),
    );
  else
    findings.push(
      fail(
        'createrole',
        `role ${role} can create roles but not ${probe === 'grant' ? 'make itself a member of them' : 'act as them (SET ROLE)'}`,
        `use a role with CREATEROLE that may grant the roles it creates to itself (${MANAGED_DOCS})`,
      ),
    );
  return findings;
}

/**
 * Does what `tenant add` does with a role, in a transaction that is rolled back: create it,
 * grant it to the current role, SET ROLE to it. Tells which step, if any, was refused; the
 * rules differ between PostgreSQL 15 and 16+ (CREATEROLE, createrole_self_grant).
 */
async function probeTenantRole(client: pg.ClientBase, superuser: boolean): Promise<'ok' | 'create' | 'grant' | 'set'> {
  const probe = pg.escapeIdentifier(`pgferry_doctor_${randomBytes(4).toString('hex')}`);
  let step: 'create' | 'grant' | 'set' = 'create';
  await client.query('begin');
  try {
    await client.query(`create role ${probe} nologin`);
    step = 'grant';
    if (!superuser) await client.query(`grant ${probe} to current_user`);
    step = 'set';
    await client.query(`set local role ${probe}`);
    return 'ok';
  } catch (error) {
    if (isDatabaseError(error) && error.code === '42501') return step;
    throw error;
  } finally {
    await client.query('rollback');
  }
}

/** What the role may do in the database: schemas (tenants, the ferry schema) and temporary tables. */
export async function databaseChecks(client: pg.ClientBase): Promise<DoctorFinding[]> {
  const { rows } = await client.query<{ database: string; role: string; can_create: boolean; can_temp: boolean }>(
    `select current_database() as database, current_user as role,
            has_database_privilege(current_database(), 'CREATE') as can_create,
            has_database_privilege(current_database(), 'TEMPORARY') as can_temp`,
  );
  const { database, role, can_create, can_temp } = rows[0];
  const grant = (privilege: string) =>
    `as the database's owner: grant ${privilege} on database ${pg.escapeIdentifier(database)} to ${pg.escapeIdentifier(role)}`;
  const missing: string[] = [];
  if (!can_create) missing.push('CREATE');
  if (!can_temp) missing.push('TEMPORARY');
  if (missing.length === 0) return [ok('database', `${database}: may create schemas and temporary tables`)];
  const why = [
    !can_create && 'CREATE (the ferry schema and a schema per tenant)',
    !can_temp && 'TEMPORARY (compiling a mapping describes it in a temporary table)',
  ]
    .filter(Boolean)
    .join(' and ');
  return [fail('database', `role ${role} lacks ${why} on database ${database}`, grant(missing.join(', ')))];
}
