// A `pgferry worker` in a child process (test/helpers/worker-process.ts), for the tests and
// harnesses that kill it (SIGKILL) or stop it (SIGTERM).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WORKER_PROCESS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker-process.ts');

export interface WorkerChildOptions {
  url: string;
  concurrency?: number;
  /** How soon a dead worker's jobs are taken over (see startWorker). */
  sweepIntervalMs?: number;
  deadAfterMs?: number;
}

export interface WorkerChild {
  child: ChildProcess;
  /** What it has printed so far, stdout and stderr. */
  output: () => string;
  /** graphile-worker's id of it, as the catalog shows it (jobs' locked_by, loads' progress). */
  id: string;
  exited: Promise<unknown>;
}

/** Starts a worker process; resolves once it has said its id and that it is ready. */
export function startWorkerChild(options: WorkerChildOptions): Promise<WorkerChild> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER_PROCESS, JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise((r) => child.on('close', r));
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const id = /worker (\S+) started/.exec(out)?.[1];
      if (id && out.includes('ready')) resolve({ child, output: () => out, id, exited });
    });
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (!out.includes('ready')) reject(new Error(`worker exited ${code}: ${out}`));
    });
  });
}

/** Whether the process has neither exited nor been killed yet. */
export const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
