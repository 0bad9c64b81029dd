// An embedded PostgreSQL of a test's (or a harness's) own, to restart or crash under a running
// load: stopped cleanly (fast shutdown), or as in a crash (SIGQUIT: an immediate shutdown,
// then recovery at the next start), and started again on the same port so clients reconnect.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { type EmbeddedServer, startEmbeddedServer } from '../../src/db/embedded-server.js';

/** fast: `pg_ctl stop -m fast` (SIGINT); immediate: SIGQUIT, WAL replayed at the next start. */
export type RestartMode = 'fast' | 'immediate';

export interface RestartableServer {
  /** The superuser's URL of the `postgres` database. */
  readonly url: string;
  /** Stops the server as `mode` says, leaves it down for `downMs`, and starts it again. */
  restart(mode: RestartMode, downMs?: number): Promise<void>;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

export async function startRestartableServer(
  name: string,
  options: { ephemeral?: boolean } = {},
): Promise<RestartableServer> {
  const home = mkdtempSync(path.join(os.tmpdir(), `pgferry-${name}-`));
  chmodSync(home, 0o755);
  let server: EmbeddedServer = await startEmbeddedServer({ dir: home, ...options });
  const port = Number(new URL(server.url).port);
  const pidFile = path.join(home, 'data', 'postmaster.pid');
  return {
    url: server.url,
    async restart(mode, downMs = 0) {
      if (mode === 'fast') {
        await server.stop();
      } else {
        process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGQUIT');
        for (let i = 0; i < 200 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
      }
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      server = await startEmbeddedServer({ dir: home, port, ...options });
    },
    async stop() {
      await server.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
