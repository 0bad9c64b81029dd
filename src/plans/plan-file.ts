import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { isMap, isScalar } from 'yaml';

import { PgferryError } from '../errors.js';
import { readMapping } from '../mappings/mapping-file.js';
import { DEFAULT_PROJECT_FILE, readProject } from '../project/project-file.js';
import { type FileProblem, parseYamlFile, problemsError } from '../project/yaml-file.js';

/** What a load step does: a file through a mapping for a tenant, as `pgferry load` would. */
export interface LoadStepSpec {
  /** Absolute path. */
  file: string;
  tenant: string;
  mapping: string;
  /** Absolute path: where the mapping's name is looked up. */
  mappingsDir: string;
  format?: string;
  delimiter?: string;
  sheet?: string | number;
  records?: string;
  table?: string;
  maxRejects?: number;
  /** The most superseded duplicate lines the load may have (as `load --max-duplicates`). */
  maxDuplicates?: number;
  /** Load the file even if it was loaded already (else the step is skipped, as `pgferry load` skips it). */
  force?: boolean;
}

/** What a sync step does: one run of a sync of the project file. */
export interface SyncStepSpec {
  sync: string;
  /** Absolute path of the project file declaring it. */
  project: string;
}

/** What a backup step does: the tenant's backup into a folder, as `load --backup-to DIR --keep N`. */
export interface BackupStepSpec {
  tenant: string;
  /** Absolute path of the folder of the tenant's backups. */
  dir: string;
  keep?: number;
}

export type PlanStep = { name: string; after: string[]; line: number } & (
  { kind: 'load'; spec: LoadStepSpec } | { kind: 'sync'; spec: SyncStepSpec } | { kind: 'backup'; spec: BackupStepSpec }
);

/** A plan file, checked whole: its steps each after its prerequisites. */
export interface Plan {
  path: string;
  name: string;
  /** In an order where each step comes after those it waits for (else as the file has them). */
  steps: PlanStep[];
}

const PLAN_KEYS = ['name', 'project', 'mappings', 'steps'];
const LOAD_KEYS = [
  'load',
  'tenant',
  'mapping',
  'format',
  'delimiter',
  'sheet',
  'records',
  'table',
  'max_rejects',
  'max_duplicates',
  'force',
];
const SYNC_KEYS = ['sync'];
const BACKUP_KEYS = ['backup', 'to', 'keep'];
const STEP_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

/**
 * Reads a plan file (PLAN.yaml) and checks it whole before anything runs: its keys, its steps'
 * `after` (known steps, no cycle), each load's file and mapping, each sync in the project file.
 * One error lists every problem, each naming the plan file (as given) and line.
 */
export async function readPlan(file: string): Promise<Plan> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new PgferryError(error.code === 'ENOENT' ? `no plan file ${file}` : `cannot read ${file}: ${error.message}`, {
      hint: 'a plan lists steps: loads and syncs with their prerequisites (see pgferry plan run --help)',
    });
  });
  const { plan, projectFile, projectGiven, projectLine } = parsePlan(text, file);
  await checkSteps(plan, file, { file: projectFile, given: projectGiven, line: projectLine });
  return plan;
}

/**
 * The plan's structure, checked: keys, names, `after`, cycles, load files. What needs more
 * reading (mappings, the project file) is checked by readPlan.
 */
export function parsePlan(
  text: string,
  file: string,
): { plan: Plan; projectFile: string; projectGiven: string; projectLine?: number } {
  const { document, lineOf, report, fail, throwProblems } = parseYamlFile(text, file);
  /** The key node of `key` in the map at `at` (its line is the key's, not its value's). */
  const keyNode = (at: unknown[], key: string): unknown => {
    const map = at.length === 0 ? document.contents : document.getIn(at, true);
    if (!isMap(map)) return map;
    return map.items.find((pair) => isScalar(pair.key) && String(pair.key.value) === key)?.key ?? map;
  };
  const root = document.toJS() ?? {};
  if (typeof root !== 'object' || Array.isArray(root)) fail('a plan file is a mapping of keys (steps: …)');
  for (const key of Object.keys(root)) {
    if (!PLAN_KEYS.includes(key)) report(`unknown key "${key}" (known: ${PLAN_KEYS.join(', ')})`, keyNode([], key));
  }
  const dir = path.dirname(path.resolve(file));
  const textOf = (key: string): string | undefined => {
    const v = root[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      report(`${key}: must be text`, keyNode([], key));
      return undefined;
    }
    return v.trim();
  };
  const mappingsDir = path.resolve(dir, textOf('mappings') ?? 'mappings');
  const projectGiven = textOf('project') ?? DEFAULT_PROJECT_FILE;
  const projectFile = path.resolve(dir, projectGiven);
  const name = textOf('name') ?? path.basename(file).replace(/\.ya?ml$/i, '');

  const declared = root.steps;
  if (declared === undefined || declared === null) fail('steps: is required: the loads and syncs to run');
  if (typeof declared !== 'object' || Array.isArray(declared) || Object.keys(declared).length === 0) {
    fail('steps: must map step names to steps (load: FILE or sync: NAME)', keyNode([], 'steps'));
  }
  const steps: PlanStep[] = [];
  for (const [stepName, value] of Object.entries(declared as Record<string, unknown>)) {
    const at = ['steps', stepName];
    const reportStep = (message: string, key?: string): void =>
      report(`step ${stepName}: ${message}`, key === undefined ? keyNode(['steps'], stepName) : keyNode(at, key));
    const step = parseStep(stepName, value, { file, dir, mappingsDir, projectFile }, reportStep);
    if (!step) continue;
    step.line = lineOf(keyNode(['steps'], stepName)) ?? 1;
    steps.push(step);
  }

  const known = new Set(Object.keys(declared as Record<string, unknown>));
  for (const step of steps) {
    step.after.forEach((prerequisite, i) => {
      if (known.has(prerequisite)) return;
      const node =
        document.getIn(['steps', step.name, 'after', i], true) ?? document.getIn(['steps', step.name, 'after'], true);
      report(
        `step ${step.name}: after: no step ${prerequisite} in this plan (its steps: ${[...known].join(', ')})`,
        node,
      );
    });
  }
  const cycle = findCycle(steps);
  if (cycle) {
    const first = steps.find((s) => s.name === cycle[0])!;
    report(
      `steps ${cycle.join(' → ')} wait for each other: a cycle, no step of it could ever start`,
      keyNode(['steps', first.name], 'after'),
    );
  }
  throwProblems();
  return {
    plan: { path: path.resolve(file), name, steps: inOrder(steps) },
    projectFile,
    projectGiven,
    projectLine: lineOf(keyNode([], 'project')),
  };
}

interface StepContext {
  /** The plan file as given. */
  file: string;
  dir: string;
  mappingsDir: string;
  projectFile: string;
}

function parseStep(
  name: string,
  value: unknown,
  context: StepContext,
  report: (message: string, key?: string) => void,
): PlanStep | undefined {
  let problems = 0;
  const problem = (message: string, key?: string) => {
    problems++;
    report(message, key);
  };
  if (!STEP_NAME.test(name)) {
    problem('a step name is letters, digits, _ and -, starting with a letter or _ (at most 63)');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problem(
      'must be a mapping of keys: load: FILE (with tenant and mapping), sync: NAME or backup: TENANT (with to: DIR)',
    );
    return undefined;
  }
  const step = value as Record<string, unknown>;
  const kinds = (['load', 'sync', 'backup'] as const).filter((k) => k in step);
  if (kinds.length !== 1) {
    problem('give load: FILE, sync: NAME or backup: TENANT (one of them)');
    return undefined;
  }
  const kind = kinds[0];
  const allowed = [...{ load: LOAD_KEYS, sync: SYNC_KEYS, backup: BACKUP_KEYS }[kind], 'after'];
  for (const key of Object.keys(step)) {
    if (!allowed.includes(key)) problem(`unknown key "${key}" (known for a ${kind} step: ${allowed.join(', ')})`, key);
  }
  const text = (key: string, required = false): string | undefined => {
    const v = step[key];
    if (v === undefined || v === null) {
      if (required) problem(`${key}: is required`);
      return undefined;
    }
    if (typeof v !== 'string' || v === '') {
      problem(`${key}: must be text`, key);
      return undefined;
    }
    return v;
  };
  const after = parseAfter(step.after, (message) => problem(`after: ${message}`, 'after'));
  if (kind === 'sync') {
    // With problems, the step is still returned: its `after` is checked too (none of it runs).
    return {
      name,
      kind,
      after,
      line: 1,
      spec: { sync: (text('sync', true) ?? '').trim(), project: context.projectFile },
    };
  }
  if (kind === 'backup') {
    const keep = step.keep;
    if (keep !== undefined && (!Number.isInteger(keep) || (keep as number) < 1)) {
      problem('keep: a whole number of backups, at least 1', 'keep');
    }
    const to = text('to', true);
    const spec: BackupStepSpec = { tenant: text('backup', true) ?? '', dir: path.resolve(context.dir, to ?? '.') };
    if (keep !== undefined) spec.keep = keep as number;
    return { name, kind, after, line: 1, spec };
  }
  const given = text('load', true);
  const file = given === undefined ? undefined : path.resolve(context.dir, given);
  if (given !== undefined && file !== undefined) {
    // Said as the plan says it: relative to the plan's folder.
    const where = path.isAbsolute(given) ? given : `${given} (relative to ${planFolder(context.file)})`;
    if (!existsSync(file)) problem(`load: no such file ${where}`, 'load');
    else if (!statSync(file).isFile()) problem(`load: ${where} is not a file`, 'load');
  }
  const maxRejects = step.max_rejects;
  if (maxRejects !== undefined && (!Number.isInteger(maxRejects) || (maxRejects as number) < 0)) {
    problem('max_rejects: a whole number', 'max_rejects');
  }
  const maxDuplicates = step.max_duplicates;
  if (maxDuplicates !== undefined && (!Number.isInteger(maxDuplicates) || (maxDuplicates as number) < 0)) {
    problem('max_duplicates: a whole number', 'max_duplicates');
  }
  const sheet = step.sheet;
  if (sheet !== undefined && typeof sheet !== 'string' && !(Number.isInteger(sheet) && (sheet as number) > 0)) {
    problem("sheet: a sheet's name or its position (1 is the first)", 'sheet');
  }
  const force = step.force;
  if (force !== undefined && typeof force !== 'boolean') problem('force: true or false', 'force');
  const tenant = text('tenant', true);
  const mapping = text('mapping', true);
  const spec: LoadStepSpec = {
    file: file!,
    tenant: tenant!,
    mapping: mapping!,
    mappingsDir: context.mappingsDir,
    format: text('format'),
    delimiter: text('delimiter'),
    sheet: sheet as string | number | undefined,
    records: text('records'),
    table: text('table'),
    maxRejects: maxRejects as number | undefined,
    maxDuplicates: maxDuplicates as number | undefined,
    force: force === true ? true : undefined,
  };
  if (problems > 0) return { name, kind, after, line: 1, spec };
  // A mapping given as a path is relative to the plan, as the file is.
  if (spec.mapping.endsWith('.sql') || spec.mapping.includes('/'))
    spec.mapping = path.resolve(context.dir, spec.mapping);
  for (const key of Object.keys(spec) as (keyof LoadStepSpec)[]) if (spec[key] === undefined) delete spec[key];
  return { name, kind, after, line: 1, spec };
}

/** The folder of a plan file as its user would name it: `plans/`, or `the plan's folder` when it is here. */
function planFolder(planFile: string): string {
  const dir = path.dirname(planFile);
  return dir === '.' ? "the plan's folder" : `${dir}/`;
}

/** `after: a`, or `after: [a, b]`. */
function parseAfter(value: unknown, report: (message: string) => void): string[] {
  if (value === undefined || value === null) return [];
  const names = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === '')) {
    report('the names of the steps this one waits for: [a, b]');
    return [];
  }
  const list = names as string[];
  const twice = list.find((n, i) => list.indexOf(n) !== i);
  if (twice !== undefined) report(`${twice} is named twice`);
  return list;
}

/**
 * A cycle of `after`, if any, in the order its steps would have to run (each before the
 * next), starting from the one the file names first and ending where it started.
 */
export function findCycle(steps: { name: string; after: string[] }[]): string[] | undefined {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return stack.slice(stack.indexOf(name));
    state.set(name, 'visiting');
    stack.push(name);
    for (const prerequisite of byName.get(name)?.after ?? []) {
      const found = visit(prerequisite);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const step of steps) {
    const found = visit(step.name);
    if (!found) continue;
    // The stack went from dependents to prerequisites: reversed, it is the order of running.
    const order = found.reverse();
    const order0 = steps.findIndex((s) => order.includes(s.name));
    const start = order.indexOf(steps[order0].name);
    const rotated = [...order.slice(start), ...order.slice(0, start)];
    return [...rotated, rotated[0]];
  }
  return undefined;
}

/** The steps, each after its prerequisites; otherwise in the file's order. */
function inOrder<T extends { name: string; after: string[] }>(steps: T[]): T[] {
  const done = new Set<string>();
  const ordered: T[] = [];
  while (ordered.length < steps.length) {
    const next = steps.find((s) => !done.has(s.name) && s.after.every((a) => done.has(a)));
    if (!next) break; // a cycle: refused before this is called
    done.add(next.name);
    ordered.push(next);
  }
  return ordered;
}

/** What only reading other files tells: each load's mapping, each sync in the project file; every problem at once. */
async function checkSteps(
  plan: Plan,
  given: string,
  project: { file: string; given: string; line?: number },
): Promise<void> {
  const problems: FileProblem[] = [];
  const at = (step: PlanStep) => ({ file: given, line: step.line });
  for (const step of plan.steps) {
    if (step.kind !== 'load') continue;
    try {
      await readMapping(
        step.spec.mapping,
        step.spec.mappingsDir,
        'mappings are looked up in `mappings` next to the plan unless it says mappings: DIR',
      );
    } catch (error) {
      if (!(error instanceof PgferryError)) throw error;
      // A mapping that does not parse names its own file and line; one not found, the plan's.
      if (error.location.file)
        problems.push({ message: error.message, file: error.location.file, line: error.location.line });
      else problems.push({ message: `step ${step.name}: ${error.message}`, ...at(step) });
    }
  }
  const syncs = plan.steps.filter((s) => s.kind === 'sync');
  if (syncs.length > 0 && !existsSync(project.file)) {
    problems.push({
      message: `step ${syncs[0].name}: a sync step, but there is no project file ${project.given}`,
      ...(project.line ? { file: given, line: project.line } : at(syncs[0])),
    });
  } else if (syncs.length > 0) {
    const declared = await readProject(project.file);
    const known = [...declared.syncs.keys()];
    for (const step of syncs) {
      if (step.kind !== 'sync' || declared.syncs.has(step.spec.sync)) continue;
      problems.push({
        message: `step ${step.name}: no sync ${step.spec.sync} in ${project.given} (${known.length > 0 ? `its syncs: ${known.join(', ')}` : 'it declares no syncs'})`,
        ...at(step),
      });
    }
  }
  if (problems.length > 0) throw problemsError(problems);
}
