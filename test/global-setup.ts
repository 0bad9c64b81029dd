import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import pg from 'pg';
import type { TestProject } from 'vitest/node';

import { type EmbeddedServer, startEmbeddedServer } from '../src/db/embedded-server.js';
import { migrate } from '../src/db/migrate.js';

export const TEMPLATE_DATABASE = 'pgferry_test_template';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a superuser connection to the test server's `postgres` database. */
    adminUrl: string;
    /** Where the server came from, for messages. */
    serverOrigin: string;
  }
}

let server: EmbeddedServer | undefined;
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

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${TEMPLATE_DATABASE} with (force)`);
    await admin.query(`create database ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const template = new pg.Client({ connectionString: databaseUrl(adminUrl, TEMPLATE_DATABASE) });
  await template.connect();
  try {
    await migrate(template);
  } finally {
    await template.end();
  }
  project.provide('adminUrl', adminUrl);
  project.provide('serverOrigin', origin);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
}

export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
