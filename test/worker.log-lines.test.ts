// The worker logs one line per failed job: no stack trace unless --debug.
import { afterEach, describe, expect, it, vi } from 'vitest';

import { type RunningWorker, startWorker } from '../src/jobs/worker.js';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.js';

const db: TestDatabase = await createTestDatabase();
let worker: RunningWorker | undefined;

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  vi.restoreAllMocks();
});

/** Runs one job that throws an error of two lines, and returns what the worker wrote to stderr. */
async function failOneJob(debug: boolean): Promise<string[]> {
  const written: string[] = [];
  const real = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (String(chunk).startsWith('pgferry worker: ')) {
      written.push(String(chunk));
      return true;
    }
    return (real as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  });
  let failed!: () => void;
  const ran = new Promise<void>((resolve) => (failed = resolve));
  worker = await startWorker(db.pool, {
    pollInterval: 100,
    log: () => {},
    debug,
    tasks: {
      failing_task: () => {
        setTimeout(failed, 200);
        throw new Error('the source is gone\nsecond line of the message');
      },
    },
  });
  const { rows } = await db.pool.query<{ id: string }>(
    `select id from graphile_worker.add_job('failing_task', '{}'::json, max_attempts => 1)`,
  );
  await ran;
  await worker.stop();
  worker = undefined;
  return written.filter((line) => line.includes(`job ${rows[0].id} `) || line.includes(`task ${rows[0].id} `));
}

describe('the worker log', () => {
  it('is one line per failed job, without a stack trace', async () => {
    const lines = await failOneJob(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^pgferry worker: job \d+ \(failing_task, attempt 1 of 1\) failed: the source is gone second line of the message\n$/,
    );
  });

  it('has the stack trace with --debug', async () => {
    const lines = await failOneJob(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/Failed task \d+ \(failing_task, .*attempt 1 of 1\) with error/);
    expect(lines[0]).toMatch(/\n\s+at /);
  });
});
