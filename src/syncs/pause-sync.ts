import type pg from 'pg';

import { PgferryError } from '../errors.js';
import { readMapping } from '../mappings/mapping-file.js';
import { type Project, projectMappingHint, projectSync } from '../project/project-file.js';
import { declareSync } from './run-sync.js';

export interface PauseOptions {
  /** Who paused it, kept in ferry.syncs. (Default: $USER) */
  by?: string;
}

/**
 * `pgferry pause`: the worker's crontab skips the sync's schedule until it is unpaused (a
 * manual run still runs it). The sync is declared first, as pgferry.yaml says it now, so a
 * sync that never ran can be paused too. Pausing a paused sync keeps when it was paused.
 *
 * @example
 *   await pauseSync(pool, await readProject(), 'legacy_products');
 */
export async function pauseSync(
  pool: pg.Pool,
  project: Project,
  name: string,
  options: PauseOptions = {},
): Promise<void> {
  await setPaused(pool, project, name, true, options.by ?? process.env.USER ?? null);
}

/**
 * `pgferry unpause`: the sync runs on its schedule again.
 *
 * @example
 *   await unpauseSync(pool, await readProject(), 'legacy_products');
 */
export async function unpauseSync(pool: pg.Pool, project: Project, name: string): Promise<void> {
  await setPaused(pool, project, name, false, null);
}

async function setPaused(
  pool: pg.Pool,
  project: Project,
  name: string,
  pause: boolean,
  by: string | null,
): Promise<void> {
  const config = projectSync(project, name);
  await declareSync(
    pool,
    config,
    (await readMapping(config.mapping, project.mappingsDir, projectMappingHint(project))).name,
  );
  const { rows } = await pool.query(
    `update ferry.syncs set paused_at = case when $2 then coalesce(paused_at, now()) end,
            paused_by = case when $2 then $3 end
     where name = $1 returning paused_at`,
    [name, pause, by],
  );
  if (!rows[0]) throw new PgferryError(`no sync ${name}`);
}
