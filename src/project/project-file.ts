import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { parseCronItem } from 'graphile-worker';

import { PgferryError } from '../errors.js';
import { usesCursorParameter } from '../syncs/sync-query.js';
import { parseYamlFile } from './yaml-file.js';

/** A sync as pgferry.yaml declares it. */
export interface SyncConfig {
  name: string;
  /** `env:NAME` or a URL without a password. */
  from: string;
  table?: string;
  /** May hold `:cursor`, replaced by the stored cursor; without it pgferry adds the condition itself. */
  query?: string;
  /** The source column whose largest value pulled so far is where the next increment starts. */
  cursor?: string;
  tenant: string;
  mapping: string;
  mode: 'append' | 'upsert' | 'mirror';
  /** Cron (five fields, the worker's clock). */
  schedule?: string;
  /** mirror: a boolean or date/timestamp column marking rows absent from the source. */
  softDelete?: string;
  maxRejects?: number;
  /** The most superseded duplicate lines a run may have (as `load --max-duplicates`). */
  maxDuplicates?: number;
  /** Line of the sync in pgferry.yaml, for messages. */
  line: number;
}

/** The project file, pgferry.yaml: where it is, where its mappings are, its syncs. */
export interface Project {
  path: string;
  /** Absolute: where a sync's mapping name is looked up. */
  mappingsDir: string;
  /** The `mappings:` key as the file gives it (default `mappings`), relative to the file, for messages. */
  mappingsGiven: string;
  syncs: Map<string, SyncConfig>;
}

export const DEFAULT_PROJECT_FILE = 'pgferry.yaml';

const SYNC_KEYS = new Set([
  'from',
  'table',
  'query',
  'cursor',
  'tenant',
  'mapping',
  'mode',
  'schedule',
  'soft_delete',
  'max_rejects',
  'max_duplicates',
]);

/**
 * Reads pgferry.yaml: its syncs, checked whole (an unknown key, a bad mode, a cron that does
 * not parse, a URL with a password): one error lists every problem, each with the file and
 * line. Mappings are looked up in `mappings/` next to it unless it says `mappings: DIR`.
 */
export async function readProject(file: string = DEFAULT_PROJECT_FILE): Promise<Project> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new PgferryError(
      error.code === 'ENOENT' ? `no project file ${file}` : `cannot read ${file}: ${error.message}`,
      { hint: 'syncs are declared in pgferry.yaml (see the README, "Syncs"); --project names another file' },
    );
  });
  return parseProject(text, file);
}

export function parseProject(text: string, file: string): Project {
  const { document, lineOf, report, fail, throwProblems } = parseYamlFile(text, file);
  const root = document.toJS() ?? {};
  if (typeof root !== 'object' || Array.isArray(root)) fail('the project file must be a mapping of keys (syncs: …)');
  for (const key of Object.keys(root)) {
    if (key !== 'syncs' && key !== 'mappings') {
      report(`unknown key "${key}" (known: syncs, mappings)`, document.get(key, true));
    }
  }
  if (root.mappings !== undefined && (typeof root.mappings !== 'string' || root.mappings.trim() === '')) {
    report('mappings: the folder of the mapping files, relative to this file', document.get('mappings', true));
  }
  const mappingsGiven =
    typeof root.mappings === 'string' && root.mappings.trim() !== '' ? root.mappings.trim() : 'mappings';
  const dir = path.dirname(path.resolve(file));
  const mappingsDir = path.resolve(dir, mappingsGiven);
  const syncs = new Map<string, SyncConfig>();
  const syncsNode = document.get('syncs', true);
  const declared = (root.syncs ?? {}) as Record<string, unknown>;
  if (typeof declared !== 'object' || Array.isArray(declared)) fail('syncs: must map names to syncs', syncsNode);
  for (const [name, value] of Object.entries(declared)) {
    const node = document.getIn(['syncs', name], true);
    const sync = parseSync(name, value, lineOf(node) ?? 1, (message, key) =>
      report(`sync ${name}: ${message}`, key === undefined ? node : document.getIn(['syncs', name, key], true)),
    );
    if (sync) syncs.set(name, sync);
  }
  throwProblems();
  return { path: path.resolve(file), mappingsDir, mappingsGiven, syncs };
}

/** A sync's keys, every problem reported; undefined when it has any. */
function parseSync(
  name: string,
  value: unknown,
  line: number,
  report: (message: string, key?: string) => void,
): SyncConfig | undefined {
  let problems = 0;
  const problem = (message: string, key?: string) => {
    problems++;
    report(message, key);
  };
  if (!/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/.test(name)) {
    problem('a sync name is letters, digits, _ and -, starting with a letter or _ (at most 63)');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problem('must be a mapping of keys');
    return undefined;
  }
  const sync = value as Record<string, unknown>;
  for (const key of Object.keys(sync)) {
    if (!SYNC_KEYS.has(key)) problem(`unknown key "${key}" (known: ${[...SYNC_KEYS].join(', ')})`, key);
  }
  const text = (key: string, required = false): string | undefined => {
    const v = sync[key];
    if (v === undefined || v === null) {
      if (required) problem(`${key}: is required`);
      return undefined;
    }
    if (typeof v !== 'string' || v.trim() === '') {
      problem(`${key}: must be text`, key);
      return undefined;
    }
    return v.trim();
  };
  const from = text('from', true);
  if (from !== undefined && !from.startsWith('env:')) {
    let url: URL | undefined;
    try {
      url = new URL(from);
    } catch {
      problem('from: a postgres:// or mysql:// URL, or env:NAME', 'from');
    }
    // pgferry.yaml is a file people commit: a password has no place in it.
    if (url?.password)
      problem('from: holds a password; put the URL in an environment variable: from: env:NAME', 'from');
  }
  const table = text('table');
  const query = text('query');
  if ((sync.table === undefined) === (sync.query === undefined)) problem('give table or query (one of them)');
  const mode = (text('mode') ?? 'upsert') as SyncConfig['mode'];
  if (!['append', 'upsert', 'mirror'].includes(mode)) problem(`mode: append, upsert or mirror, not "${mode}"`, 'mode');
  const cursor = text('cursor');
  if (query !== undefined && usesCursorParameter(query) && cursor === undefined)
    problem('the query uses :cursor: name the cursor column');
  const softDelete = text('soft_delete');
  if (softDelete !== undefined && mode !== 'mirror') problem('soft_delete: only for mode: mirror', 'soft_delete');
  const schedule = text('schedule');
  if (schedule !== undefined) {
    try {
      parseCronItem({ task: 'pgferry_sync', match: schedule, identifier: name });
    } catch (error) {
      problem(`schedule: ${(error as Error).message}`, 'schedule');
    }
  }
  const maxRejects = sync.max_rejects;
  if (maxRejects !== undefined && (!Number.isInteger(maxRejects) || (maxRejects as number) < 0)) {
    problem('max_rejects: a whole number', 'max_rejects');
  }
  const maxDuplicates = sync.max_duplicates;
  if (maxDuplicates !== undefined && (!Number.isInteger(maxDuplicates) || (maxDuplicates as number) < 0)) {
    problem('max_duplicates: a whole number', 'max_duplicates');
  }
  const tenant = text('tenant', true);
  const mapping = text('mapping', true);
  if (problems > 0) return undefined;
  return {
    name,
    from: from!,
    table,
    query,
    cursor,
    tenant: tenant!,
    mapping: mapping!,
    mode,
    schedule,
    softDelete,
    maxRejects: maxRejects as number | undefined,
    maxDuplicates: maxDuplicates as number | undefined,
    line,
  };
}

/** The sync NAME of the project, or an error listing those it has. */
export function projectSync(project: Project, name: string): SyncConfig {
  const sync = project.syncs.get(name);
  if (!sync) {
    const known = [...project.syncs.keys()];
    throw new PgferryError(`no sync ${name} in ${project.path}`, {
      hint: known.length > 0 ? `its syncs: ${known.join(', ')}` : 'it declares no syncs',
    });
  }
  return sync;
}

/**
 * What to say when a sync's mapping is not found: sync takes no --mappings-dir, the project
 * file's `mappings:` key says where mappings are.
 */
export function projectMappingHint(project: Project): string {
  return `a sync's mapping is looked up in ${project.mappingsGiven}/ next to ${path.basename(project.path)}: write it there, or name another folder with its mappings: key`;
}
