// A load that kills its own process (SIGKILL: no cleanup, no finally) at a chosen moment, for
// the resume tests and the crash harness. Prints the load id as soon as it is registered.
// usage: node --import tsx test/helpers/load-until.ts '{"url": …, "file": …, "tenant": …,
//          "mapping": …, "killAt": "stage-chunk" | "transform" | "mid-transform" | "promote" | "cleanup" | "ms:<n>"}'
import { load, type LoadEvent, openDatabase } from '../../src/index.js';

export interface LoadUntilRequest {
  url: string;
  file: string;
  tenant: string;
  mapping: string;
  chunkRows?: number;
  batchSize?: number;
  jobs?: number;
  /** When to die; ms:<n> is n milliseconds after the load is registered. */
  killAt: string;
}

const request = JSON.parse(process.argv[2] ?? '{}') as LoadUntilRequest;
const die = () => process.kill(process.pid, 'SIGKILL');
let chunks = 0;
const onEvent = (event: LoadEvent) => {
  if (event.type === 'registered') {
    process.stdout.write(`registered ${event.loadId}\n`);
    const ms = /^ms:(\d+)$/.exec(request.killAt);
    if (ms) setTimeout(die, Number(ms[1]));
  } else if (event.type === 'stage-progress' && request.killAt === 'stage-chunk') {
    // Some chunks committed, more to come.
    if (++chunks === 5) die();
  } else if (event.type === 'step') {
    if (event.step === request.killAt) die();
    if (event.step === 'transform' && request.killAt === 'mid-transform') setTimeout(die, 30);
  } else if (event.type === 'promote-progress' && request.killAt === 'promote') {
    die();
  }
};

const db = await openDatabase({ url: request.url, migrate: false });
const result = await load(db.pool, {
  file: request.file,
  tenant: request.tenant,
  mapping: request.mapping,
  chunkRows: request.chunkRows,
  batchSize: request.batchSize,
  jobs: request.jobs,
  force: true,
  onEvent,
});
process.stdout.write(`finished ${result.status}\n`);
await db.close();
