// `pgferry doctor` against roles that each lack one thing pgferry needs: every missing
// privilege must be named on its own line, with its fix, before anything fails halfway.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { migrate } from '../src/db/migrate.js';
import { doctor, type DoctorFinding } from '../src/doctor/doctor.js';
import { addTenant, protectTable } from '../src/index.js';
import { PRODUCTS_DDL } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const SUFFIX = randomBytes(3).toString('hex');
const roles: string[] = [];
const pools: pg.Pool[] = [];
/** Roles that owned something here (revoked and dropped after the logins). */
const owners: string[] = [];
let db: TestDatabase;

/** A login role of this file, with its URL to the test database; `grants` on the database. */
async function loginRole(base: string, attributes: string, grants = 'connect, create, temporary'): Promise<string> {
  const role = `doctor_${base}_${SUFFIX}`;
  const password = randomBytes(12).toString('hex');
  await db.pool.query(`create role ${role} login ${attributes} password '${password}'`);
  roles.push(role);
  await db.pool.query(`grant ${grants} on database ${db.name} to ${role}`);
  const url = new URL(db.url);
  url.username = role;
  url.password = password;
  return url.toString();
}

async function findingsAs(url: string): Promise<DoctorFinding[]> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pools.push(pool);
  return doctor(pool);
}

const failed = (findings: DoctorFinding[]) => findings.filter((f) => f.status === 'fail').map((f) => f.check);

beforeAll(async () => {
  db = await createTestDatabase();
  // Only what each role is granted below: not what PUBLIC has by default.
  await db.pool.query(`revoke temporary on database ${db.name} from public`);
  await db.pool.query('create schema app');
  await db.pool.query(PRODUCTS_DDL);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  for (const role of roles) {
    await db.pool.query(`revoke all on database ${db.name} from ${role}`);
    await db.pool.query(`drop role ${role}`);
  }
  for (const owner of owners) {
    await db.pool.query(`drop owned by ${owner}`);
    await db.pool.query(`drop role ${owner}`);
  }
});

describe('pgferry doctor', () => {
  it('passes every check for the test role (LOGIN CREATEROLE CREATEDB, owner of the database)', async () => {
    const findings = await doctor(db.pool);
    expect(failed(findings)).toEqual([]);
    const byCheck = Object.fromEntries(findings.map((f) => [f.check, f]));
    expect(byCheck.role.message).toMatch(/not a superuser/);
    expect(byCheck.createrole.status).toBe('ok');
    expect(byCheck.schema.message).toMatch(/up to date/);
    expect(byCheck.server.message).toMatch(/^PostgreSQL 1[5-9]|^PostgreSQL [2-9]\d/);
  });

  it('names a role that cannot create roles (no CREATEROLE)', async () => {
    const findings = await findingsAs(await loginRole('nocreaterole', 'nocreaterole'));
    expect(failed(findings)).toContain('createrole');
    const line = findings.find((f) => f.check === 'createrole')!;
    expect(line.message).toMatch(/cannot create roles/);
    expect(line.fix).toMatch(/alter role "doctor_nocreaterole_\w+" createrole/);
  });

  it('names a missing CREATE on the database', async () => {
    const findings = await findingsAs(await loginRole('nocreate', 'createrole', 'connect, temporary'));
    const line = findings.find((f) => f.check === 'database')!;
    expect(line.status).toBe('fail');
    expect(line.message).toMatch(/lacks CREATE \(/);
    expect(line.message).not.toMatch(/TEMPORARY/);
    expect(line.fix).toBe(
      `as the database's owner: grant CREATE on database "${db.name}" to "doctor_nocreate_${SUFFIX}"`,
    );
  });

  it('names a missing TEMPORARY on the database', async () => {
    const findings = await findingsAs(await loginRole('notemp', 'createrole', 'connect, create'));
    const line = findings.find((f) => f.check === 'database')!;
    expect(line.status).toBe('fail');
    expect(line.message).toMatch(/lacks TEMPORARY/);
    expect(line.fix).toMatch(/grant TEMPORARY on database/);
  });

  it('names a role that may not use the installed schema (not a member of its owner)', async () => {
    const findings = await findingsAs(await loginRole('stranger', 'createrole'));
    const line = findings.find((f) => f.check === 'schema')!;
    expect(line.status).toBe('fail');
    expect(line.message).toMatch(/^installed by pgferry_tester, and role doctor_stranger_\w+ may not use it$/);
    expect(line.fix).toMatch(/grant "pgferry_tester" to "doctor_stranger_\w+"$/);
  });

  it('names a schema upgrade to apply', async () => {
    await db.pool.query(`update ferry.schema_functions set sha256 = 'edited' where name = 'export.sql'`);
    const line = (await doctor(db.pool)).find((f) => f.check === 'schema')!;
    expect(line.status).toBe('ok');
    expect(line.message).toMatch(/0 migration\(s\) and 1 function file\(s\) to apply/);
    const client = await db.pool.connect();
    await migrate(client).finally(() => client.release());
    expect((await doctor(db.pool)).find((f) => f.check === 'schema')!.message).toMatch(/up to date/);
  });

  it('names a protected table whose owner it is not a member of, and a tenant it cannot act as', async () => {
    await addTenant(db.pool, 'acme');
    await protectTable(db.pool, 'app.products');
    // Protected by the test role, then handed to an owner the test role is no member of; and
    // the test role's membership of the tenant role taken away (as another admin might).
    const owner = `doctor_owner_${SUFFIX}`;
    await db.pool.query(`create role ${owner} nologin`);
    await db.pool.query(`grant ${owner} to current_user`);
    owners.push(owner);
    await db.pool.query(`grant usage, create on schema app to ${owner}; alter table app.products owner to ${owner}`);
    await db.pool.query(`revoke ${owner} from current_user`);
    const { rows } = await db.pool.query(`select role_name from ferry.tenants where slug = 'acme'`);
    await db.pool.query(`revoke ${rows[0].role_name} from current_user`);
    try {
      const findings = await doctor(db.pool);
      expect(failed(findings).sort()).toEqual(['tables', 'tenants']);
      const table = findings.find((f) => f.check === 'tables')!;
      expect(table.message).toBe(
        `protected table app.products is owned by ${owner}, and role pgferry_tester is not a member of it`,
      );
      expect(table.fix).toBe(`as an admin role: grant "${owner}" to "pgferry_tester"`);
      const tenant = findings.find((f) => f.check === 'tenants')!;
      expect(tenant.message).toBe(`role pgferry_tester cannot act as tenant acme (role ${rows[0].role_name})`);
    } finally {
      await db.pool.query(`grant ${owner} to current_user`);
      await db.pool.query(`grant ${rows[0].role_name} to current_user`);
      await db.pool.query(`alter table app.products owner to current_user`);
    }
    expect(failed(await doctor(db.pool))).toEqual([]);
  });

  it('warns of a timeout set for the role, with the fix', async () => {
    const url = await loginRole('timeout', 'createrole');
    await db.pool.query(`alter role doctor_timeout_${SUFFIX} set statement_timeout = '5min'`);
    const findings = await findingsAs(url);
    const line = findings.find((f) => f.check === 'timeouts')!;
    expect(line).toMatchObject({ status: 'warn' });
    expect(line.message).toMatch(/^statement_timeout is 300000ms \(from user\)/);
    expect(line.fix).toBe(
      `alter role "doctor_timeout_${SUFFIX}" set statement_timeout = 0 (a role may set its own defaults)`,
    );
    expect(failed(findings)).not.toContain('timeouts');
  });

  it('prints one line per check through the CLI and exits 1 on a failure, installing nothing', async () => {
    const url = await loginRole('cli', 'nocreaterole');
    const run = await runCli(['doctor'], { env: { DATABASE_URL: url } });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^FAIL {2}createrole +role doctor_cli_\w+ cannot create roles/m);
    expect(run.stdout).toMatch(/^ +fix: as an admin role: alter role "doctor_cli_\w+" createrole/m);
    expect(run.stdout).toMatch(/^ok {4}server +PostgreSQL/m);
    expect(run.stdout).toMatch(/2 check\(s\) failed/);
    const json = await runCli(['doctor', '--json'], { env: { DATABASE_URL: url } });
    expect(JSON.parse(json.stdout).find((f: DoctorFinding) => f.check === 'createrole').status).toBe('fail');
  });
});
