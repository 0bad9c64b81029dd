import type pg from 'pg';

import { readMapping } from '../mappings/mapping-file.js';
import { type Project, projectSync, type SyncConfig } from '../project/project-file.js';
import { addJob, ensureQueueSchema, queueName, TASKS } from './queue.js';

/** The queue of a sync's jobs: that of its tenant and its mapping's target table. */
export async function syncQueueName(pool: pg.Pool, project: Project, sync: SyncConfig): Promise<string> {
  const mapping = await readMapping(sync.mapping, project.mappingsDir);
  const { rows } = await pool.query<{ target: string | null }>(
    `select n.nspname || '.' || c.relname as target
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.oid = to_regclass($1)`,
    [mapping.target],
  );
  return queueName(sync.tenant, rows[0]?.target ?? mapping.target);
}

/**
 * `pgferry sync NAME --queue`: queues one run of the sync for a worker (`pgferry worker`),
 * on the queue of its tenant and target table, and returns at once.
 *
 * @example
 *   await enqueueSync(pool, await readProject('pgferry.yaml'), 'legacy_products', { full: true });
 */
export async function enqueueSync(
  pool: pg.Pool,
  project: Project,
  name: string,
  options: { full?: boolean } = {},
): Promise<void> {
  const sync = projectSync(project, name);
  await ensureQueueSchema(pool);
  await addJob(
    pool,
    TASKS.sync,
    { name: sync.name, full: options.full ?? false },
    await syncQueueName(pool, project, sync),
    null,
  );
}
