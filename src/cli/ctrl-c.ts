import type { LoadEvent, Step } from '../load/types.js';
import { stdio } from './context.js';

/** Exit code of a process stopped by SIGINT (128 + 2), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/**
 * While a load runs in the CLI, Ctrl-C (SIGINT) says what happened and what to run next —
 * the load stopped where it was, its state kept, `pgferry resume N` to finish it — and exits
 * 130 at once. What the load committed stays (staging commits in chunks; a promotion commits
 * whole or not at all), the rest is rolled back by the server as the connections close: the
 * load shows as interrupted, which resume and cancel take.
 *
 * `watch(event)` follows the load's events; `stop()` ends the watching.
 */
export function onCtrlC(options: { validation?: boolean; beforeMessage?: () => void } = {}): {
  watch: (event: LoadEvent) => void;
  stop: () => void;
} {
  let loadId: number | undefined;
  let step: Step | 'compile' = 'compile';
  const handler = () => {
    options.beforeMessage?.();
    if (loadId === undefined) {
      stdio.err('\nCtrl-C: stopped before the load was registered; nothing was changed');
    } else if (options.validation) {
      stdio.err(
        `\nCtrl-C: the validation stopped while ${describeStep(step)}; nothing was changed. What it left (load ${loadId}) goes with: pgferry cancel ${loadId}`,
      );
    } else {
      stdio.err(
        [
          `\nCtrl-C: load ${loadId} stopped while ${describeStep(step)}; what it committed is kept, and nothing half-done.`,
          `  to finish it:     pgferry resume ${loadId}`,
          `  to abandon it:    pgferry cancel ${loadId}`,
          `  where it stopped: pgferry status ${loadId}`,
        ].join('\n'),
      );
    }
    // The embedded server's exit hook (async-exit-hook) listens too: it stops the server, then
    // exits 130 itself.
    if (process.listenerCount('SIGINT') === 1) process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', handler);
  return {
    watch(event) {
      if (event.type === 'registered') {
        loadId = event.loadId;
        step = 'compile';
      } else if (event.type === 'step') step = event.step;
    },
    stop: () => process.off('SIGINT', handler),
  };
}

function describeStep(step: Step | 'compile'): string {
  return {
    compile: 'compiling its mapping',
    stage: 'staging',
    transform: 'transforming',
    promote: 'promoting',
    verify: 'verifying',
    cleanup: 'cleaning up',
  }[step];
}
