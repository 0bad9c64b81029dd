// A worker in a process of its own, for the tests that kill it (SIGKILL) or stop it (SIGTERM).
// Prints "ready" once it runs, and each line it logs.
// usage: node --import tsx test/helpers/worker-process.ts '{"url": …, "concurrency": 1}'
//        (also "sweepIntervalMs" and "deadAfterMs": how soon a dead worker's jobs are taken over)
import { openDatabase } from '../../src/index.js';
import { startWorker } from '../../src/jobs/worker.js';

const request = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  concurrency?: number;
  sweepIntervalMs?: number;
  deadAfterMs?: number;
};
const db = await openDatabase({ url: request.url, migrate: false });
const worker = await startWorker(db.pool, {
  concurrency: request.concurrency ?? 1,
  pollInterval: 200,
  sweepIntervalMs: request.sweepIntervalMs,
  deadAfterMs: request.deadAfterMs,
  log: (line) => process.stdout.write(`${line}\n`),
});
process.on('SIGTERM', () => {
  process.stdout.write('stopping\n');
  worker.stop().then(
    () => process.stdout.write('stop done\n'),
    (error: unknown) => process.stdout.write(`stop failed: ${String(error)}\n`),
  );
});
process.on('exit', (code) => process.stdout.write(`exit ${code}\n`));
process.stdout.write('ready\n');
await worker.done;
await db.close();
process.stdout.write('stopped\n');
