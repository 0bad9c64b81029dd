// Point 12 of issue 25: pgferry.yaml and plan files report every problem at once, with paths as
// the user gave them (5 problems took 4 runs, and `mode: upsrt` was never reported); the hint
// for a sync's missing mapping offered --mappings-dir, which sync does not take.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { productsTable, tempDir, writeFile } from './helpers/fixtures.js';
import { runCli } from './helpers/run-cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = tempDir();
  env = { DATABASE_URL: db.url };
  await productsTable(db.pool, ['acme']);
});

describe('pgferry.yaml, checked whole', () => {
  it('every problem at once, mode: upsrt among them, each with its line', async () => {
    writeFile(
      dir,
      'pgferry.yaml',
      `mapings: maps
syncs:
  one:
    from: postgres://u:secret@legacy/shop
    table: items
    tenant: acme
    mapping: products
    mode: upsrt
  two:
    from: env:LEGACY
    tenant: acme
    mapping: products
    shedule: "0 * * * *"
    max_duplicates: -1
`,
    );
    const run = await runCli(['sync', 'one'], { cwd: dir, env });
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe('pgferry: 6 problems in pgferry.yaml:');
    expect(lines.slice(1)).toEqual([
      '  pgferry.yaml:1: unknown key "mapings" (known: syncs, mappings)',
      '  pgferry.yaml:4: sync one: from: holds a password; put the URL in an environment variable: from: env:NAME',
      '  pgferry.yaml:8: sync one: mode: append, upsert or mirror, not "upsrt"',
      expect.stringMatching(/^ {2}pgferry\.yaml:13: sync two: unknown key "shedule" \(known: /),
      '  pgferry.yaml:10: sync two: give table or query (one of them)',
      '  pgferry.yaml:14: sync two: max_duplicates: a whole number',
    ]);
  });

  it("a sync's missing mapping: the hint names the mappings: key, not --mappings-dir (which sync does not take)", async () => {
    const project = path.join(dir, 'sub');
    mkdirSync(project);
    writeFile(
      project,
      'pgferry.yaml',
      'mappings: maps\nsyncs:\n  one:\n    from: env:LEGACY_SOURCE_URL\n    table: items\n    tenant: acme\n    mapping: nowhere\n',
    );
    const run = await runCli(['sync', 'one', '--project', 'sub/pgferry.yaml'], {
      cwd: dir,
      env: { ...env, LEGACY_SOURCE_URL: db.url },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/mapping "nowhere" not found/);
    expect(run.stderr).toMatch(/hint: a sync's mapping is looked up in maps\/ next to pgferry\.yaml: .*mappings: key/);
    expect(run.stderr).not.toMatch(/--mappings-dir/);
    const help = await runCli(['sync', '--help']);
    expect(help.stdout).not.toMatch(/--mappings-dir/);
  });
});

describe('a plan file, checked whole', () => {
  it('every problem at once, with the paths as the plan gives them', async () => {
    const plans = path.join(dir, 'plans');
    mkdirSync(plans, { recursive: true });
    writeFile(plans, 'here.csv', 'sku,name,price\nA,a,1\n');
    writeFile(
      plans,
      'nightly.yaml',
      `steps:
  a: { load: data/missing.csv, tenant: acme, mapping: products }
  b:
    load: here.csv
    tenant: acme
    mapping: products
    max_reject: 3
    after: [a, nope]
  c: { sync: legacy }
`,
    );
    const run = await runCli(['plan', 'run', 'plans/nightly.yaml'], { cwd: dir, env });
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe('pgferry: 3 problems in plans/nightly.yaml:');
    expect(lines.slice(1)).toEqual([
      '  plans/nightly.yaml:2: step a: load: no such file data/missing.csv (relative to plans/)',
      expect.stringMatching(/^ {2}plans\/nightly\.yaml:7: step b: unknown key "max_reject" \(known for a load step: /),
      '  plans/nightly.yaml:8: step b: after: no step nope in this plan (its steps: a, b, c)',
    ]);
  });

  it('then what needs other files: every missing mapping and sync at once', async () => {
    const plans = path.join(dir, 'plans');
    writeFile(
      plans,
      'weekly.yaml',
      `project: ../pgferry-none.yaml
steps:
  a: { load: here.csv, tenant: acme, mapping: missing_one }
  b: { load: here.csv, tenant: acme, mapping: missing_two }
  c: { sync: legacy }
`,
    );
    const run = await runCli(['plan', 'run', 'plans/weekly.yaml'], { cwd: dir, env });
    expect(run.code).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe('pgferry: 3 problems in plans/weekly.yaml:');
    expect(lines[1]).toMatch(/^ {2}plans\/weekly\.yaml:3: step a: mapping "missing_one" not found/);
    expect(lines[2]).toMatch(/^ {2}plans\/weekly\.yaml:4: step b: mapping "missing_two" not found/);
    expect(lines[3]).toBe(
      '  plans/weekly.yaml:1: step c: a sync step, but there is no project file ../pgferry-none.yaml',
    );
  });
});
