import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';
import type { TestProject } from 'vitest/node';

import { type EmbeddedServer, startEmbeddedServer } from '../src/db/embedded-server.js';
import { migrate } from '../src/db/migrate.js';
import { withClient } from './helpers/with-client.js';

export const TEMPLATE_DATABASE = 'pgferry_test_template';

/**
 * The role every test runs as: what managed PostgreSQL hands out (RDS, Cloud SQL, Azure, Neon,
 * Supabase), LOGIN CREATEROLE CREATEDB and no superuser. It owns the template and so every
 * test database cloned from it. Kept on the server between runs: on PostgreSQL 16+ it is the
 * grantor of its tenant roles' memberships, and a role that granted anything cannot be dropped
 * while a grant is left.
 */
export const TEST_ROLE = 'pgferry_tester';

declare module 'vitest' {
  export interface ProvidedContext {
    /**
     * URL of the test role's connection to the test server's `postgres` database: a
     * LOGIN CREATEROLE CREATEDB role, not a superuser (TEST_ROLE).
     */
    adminUrl: string;
    /** URL of a superuser connection, for the few tests that need one (their names say why). */
    superuserUrl: string;
    /** Where the server came from, for messages. */
    serverOrigin: string;
  }
}

let server: EmbeddedServer | undefined;
/** The superuser's connection, and the server's roles when the run started. */
let superuser: { url: string; rolesAtStart: Set<string> } | undefined;
let home: string | undefined;

/**
 * One PostgreSQL server for the whole run: PGFERRY_TEST_DATABASE_URL when set (CI's second
 * opinion), else an embedded PostgreSQL 18 in a temporary folder. The ferry schema is
 * installed once into a template database; each test file clones its own from it.
 */
export async function setup(project: TestProject): Promise<void> {
  // CLI tests run the shipped entry point (bin/ -> dist/): build it from the current source.
  // tsc writes the JavaScript even when types are wrong (status 2); `npm run typecheck`, not
  // the tests, is where type errors fail.
  try {
    execFileSync(process.execPath, [path.resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      stdio: 'inherit',
    });
  } catch (error) {
    if ((error as { status?: number }).status !== 2) throw error;
    console.warn('global-setup: the build has type errors (shown above); the tests run the JavaScript it wrote');
  }

  let adminUrl = process.env.PGFERRY_TEST_DATABASE_URL;
  let origin = 'PGFERRY_TEST_DATABASE_URL';
  if (!adminUrl) {
    home = mkdtempSync(path.join(os.tmpdir(), 'pgferry-test-'));
    server = await startEmbeddedServer({ dir: home, ephemeral: true });
    adminUrl = server.url;
    origin = 'embedded PostgreSQL 18';
  }

  const superuserUrl = adminUrl;
  const testRoleUrl = await ensureTestRole(superuserUrl);
  superuser = { url: superuserUrl, rolesAtStart: await withClient(superuserUrl, roleNames) };
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE_DATABASE} with (force)`);
    await admin.query(`create database ${TEMPLATE_DATABASE} owner ${TEST_ROLE}`);
  } finally {
    await admin.end();
  }
  // Installed by the test role itself, as a user without a superuser would.
  const template = new pg.Client({ connectionString: databaseUrl(testRoleUrl, TEMPLATE_DATABASE) });
  await template.connect();
  try {
    await migrate(template);
  } finally {
    await template.end();
  }
  project.provide('adminUrl', testRoleUrl);
  project.provide('superuserUrl', superuserUrl);
  project.provide('serverOrigin', origin);
}

export async function teardown(): Promise<void> {
  let leftover: Error | undefined;
  try {
    if (superuser) await refuseLeftoverRoles(superuser.url, superuser.rolesAtStart);
  } catch (error) {
    leftover = error as Error;
  } finally {
    await server?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  }
  if (leftover) {
    // vitest prints an error thrown here but still exits 0, its reports already written: the
    // exit code must say it (.ci/run counts a failed exit as a failure).
    console.error(`global-setup: ${leftover.message}`);
    process.exit(1);
  }
}

/**
 * Roles are the server's, not a database's: a test that drops its database but not its
 * roles (tenant roles, roles it made to probe with) leaves them behind on a server that is
 * reused (CI's). The run fails, naming them: every role made since the start is gone again.
 * Runs sharing one server at the same time would see each other's; CI runs one at a time.
 */
async function refuseLeftoverRoles(superuserUrl: string, rolesAtStart: Set<string>): Promise<void> {
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  try {
    const left = [...(await roleNames(admin))].filter((r) => !rolesAtStart.has(r) && r !== TEST_ROLE);
    if (left.length)
      throw new Error(
        `the test run left ${left.length} role(s) on the server: ${left.join(', ')} ` +
          '(drop them with dropDatabase(), or in the test that made them)',
      );
  } finally {
    await admin.end();
  }
}

async function roleNames(client: pg.ClientBase): Promise<Set<string>> {
  const { rows } = await client.query<{ rolname: string }>('select rolname from pg_roles');
  return new Set(rows.map((r) => r.rolname));
}

/**
 * Creates TEST_ROLE (or resets it: attributes and a new password) as the superuser, and
 * returns the URL of its connection to the same database.
 */
async function ensureTestRole(superuserUrl: string): Promise<string> {
  const password = randomBytes(18).toString('base64url');
  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_roles where rolname = $1', [TEST_ROLE]);
    const attributes = `login createrole createdb nosuperuser nobypassrls password '${password}'`;
    await admin.query(`${rowCount ? 'alter' : 'create'} role ${TEST_ROLE} ${attributes}`);
  } finally {
    await admin.end();
  }
  const url = new URL(superuserUrl);
  url.username = TEST_ROLE;
  url.password = password;
  return url.toString();
}

export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
