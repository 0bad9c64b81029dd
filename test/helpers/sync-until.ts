// A sync run that kills its own process (SIGKILL) when its promotion starts: pulled and staged,
// not promoted. For the test of a crash between pull and promote.
// usage: node --import tsx test/helpers/sync-until.ts '{"url": …, "project": …, "sync": …}'
import { type LoadEvent, openDatabase } from '../../src/index.js';
import { readProject } from '../../src/project/project-file.js';
import { runSync } from '../../src/syncs/run-sync.js';

const request = JSON.parse(process.argv[2] ?? '{}') as { url: string; project: string; sync: string };
const onEvent = (event: LoadEvent) => {
  if (event.type === 'registered') process.stdout.write(`registered ${event.loadId}\n`);
  if (event.type === 'step' && event.step === 'promote') process.kill(process.pid, 'SIGKILL');
};
const db = await openDatabase({ url: request.url, migrate: false });
await runSync(db.pool, await readProject(request.project), request.sync, { onEvent });
process.stdout.write('finished\n');
await db.close();
