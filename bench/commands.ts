// Running the external programs the benchmark compares against (psql, pgloader) and the
// pgferry child process, with their wall time and, where measurable, their peak memory.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  seconds: number;
  /** Peak RSS of the command, from /usr/bin/time, when available. */
  maxRssKb?: number;
}

const TIME = '/usr/bin/time';
const KEEP_OUTPUT = 64 * 1024;

/** The path of an executable on PATH (or the path itself when given one), or undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir || '.', name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there: try the next
    }
  }
  return undefined;
}

const timeBinary = findExecutable(TIME);

/**
 * Runs a command to its end and returns its output (the last 64 KiB of each stream), its wall
 * time and — through GNU time's %M, when /usr/bin/time exists — its peak RSS.
 */
export async function runCommand(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; measureMemory?: boolean } = {},
): Promise<CommandResult> {
  const rssFile = path.join(os.tmpdir(), `pgferry-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const useTime = options.measureMemory !== false && timeBinary !== undefined;
  const [file, argv] = useTime ? [timeBinary, ['-f', '%M', '-o', rssFile, command, ...args]] : [command, args];
  const started = performance.now();
  const result = await new Promise<Omit<CommandResult, 'seconds'>>((resolve, reject) => {
    const child = spawn(file, argv, { env: options.env ?? process.env, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-KEEP_OUTPUT)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-KEEP_OUTPUT)));
    child.on('error', (error) => reject(new Error(`could not run ${command}: ${error.message}`, { cause: error })));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const seconds = (performance.now() - started) / 1000;
  let maxRssKb: number | undefined;
  if (useTime) {
    // GNU time writes "Command exited with non-zero status N" before the figure on failure.
    const lines = (await readFile(rssFile, 'utf8').catch(() => '')).trim().split('\n');
    const kb = Number(lines[lines.length - 1]);
    if (Number.isFinite(kb) && kb > 0) maxRssKb = kb;
    await rm(rssFile, { force: true });
  }
  return { ...result, seconds, maxRssKb };
}

/** The last few lines of a command's error output, for a message. */
export function tail(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}
