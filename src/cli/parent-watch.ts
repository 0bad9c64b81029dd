/** How often the parent is looked at. */
const WATCH_MS = 1000;

/**
 * Calls `gone` once when the process that started this one ends, if it was started by `npx` /
 * `npm exec`: npm passes SIGTERM only to the shell it runs the command in, which dies of it
 * without passing it on, and the real process is left running, adopted by another parent. Its
 * parent id changing is how that shows. A process started otherwise (a shell, `nohup … &`, a
 * service manager) keeps running when its parent goes: that is often what was meant.
 * Returns the function that stops watching.
 */
export function whenNpxParentGone(gone: () => void): () => void {
  if (process.env.npm_command !== 'exec' && process.env.npm_lifecycle_event !== 'npx') return () => {};
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    gone();
  }, WATCH_MS);
  timer.unref();
  return () => clearInterval(timer);
}
