import { Logger } from 'graphile-worker';

/**
 * graphile-worker's own messages, errors only (pgferry reports what its jobs do itself), one
 * line each: a failed job as `job 12 (pgferry_load, attempt 1 of 8) failed: <message>`, its
 * stack trace only with `debug` (`pgferry --debug worker`).
 *
 * @example
 *   run({ …, logger: workerLogger({ debug: false }) });
 */
export function workerLogger(options: { debug?: boolean; write?: (line: string) => void } = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`pgferry worker: ${line}\n`));
  return new Logger(() => (level, message, meta) => {
    if (level !== 'error') return;
    if (options.debug) return write(message);
    write(oneLine(message, meta));
  });
}

interface FailureMeta {
  failure?: boolean;
  job?: { id: string | number; task_identifier: string; attempts: number; max_attempts: number };
  error?: unknown;
}

function oneLine(message: string, meta: unknown): string {
  const failure = meta as FailureMeta | undefined;
  if (failure?.failure && failure.job) {
    const { job } = failure;
    const why = failure.error instanceof Error ? failure.error.message : String(failure.error);
    return `job ${job.id} (${job.task_identifier}, attempt ${job.attempts} of ${job.max_attempts}) failed: ${flat(why)}`;
  }
  // Other messages end with an error's text, and sometimes its stack on the lines after.
  return flat(message.split(/\n\s+at /)[0]);
}

/** Line breaks inside a message (a PostgreSQL error's) as spaces: one line per failure. */
function flat(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
