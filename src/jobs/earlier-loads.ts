import type { Job } from 'graphile-worker';
import type pg from 'pg';

import { ENDED_STATUSES } from '../load/ended-statuses.js';
import { TASKS } from './queue.js';

/**
 * The loads queued before this job in its queue (one tenant and table) that have not ended,
 * oldest first. graphile-worker runs a queue's jobs one at a time, but a job that fails (its
 * worker stopped, the server restarted) is retried after a backoff and lets the queue's next
 * job run meanwhile: that job runs these first, so that loads promote in the order queued. A
 * job out of attempts is left out: it runs no more, and would hold its queue forever.
 */
export async function earlierLoadsInQueue(pool: pg.Pool, job: Job): Promise<number[]> {
  if (job.job_queue_id === null) return [];
  const { rows } = await pool.query<{ load_id: string }>(
    `select l.id as load_id
     from graphile_worker._private_jobs j
     join graphile_worker._private_tasks t on t.id = j.task_id
     join ferry.loads l on l.id = (j.payload->>'loadId')::bigint
     where j.job_queue_id = $1 and j.id < $2 and t.identifier = $3
       and j.attempts < j.max_attempts
       and l.status <> all ($4::text[])
     order by j.id`,
    [job.job_queue_id, job.id, TASKS.load, [...ENDED_STATUSES]],
  );
  return rows.map((r) => Number(r.load_id));
}
