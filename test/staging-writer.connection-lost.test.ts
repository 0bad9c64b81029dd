// A COPY of the staging writer whose session is ended under it (pg_terminate_backend, as an
// idle cut-off or a proxy would): the writer reports that passing failure, which the load
// retries, and not the TypeError pg-copy-streams throws afterwards on its null connection
// ("Cannot read properties of null (reading 'stream')"), which failed the load (found by the
// fault harness).
import { describe, expect, it } from 'vitest';

import { isTransient } from '../src/errors.js';
import { StagingWriter } from '../src/load/steps/staging-writer.js';
import { createTestDatabase } from './helpers/test-database.js';

const db = await createTestDatabase();

describe('a staging COPY whose connection is cut', () => {
  it('fails with the connection error, and aborting it throws nothing', async () => {
    await db.pool.query('create unlogged table public.stage_cut (_line bigint not null, a text)');
    const client = await db.pool.connect();
    client.on('error', () => {});
    const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
    const writer = new StagingWriter([client], { loadId: 1, stagingTable: 'public.stage_cut', delimiter: ',' });
    let failure: unknown;
    try {
      for (let line = 1; line <= 200; line++) {
        for (let i = 0; i < 500; i++) writer.out.appendText(line * 1000 + i, `value ${line}`);
        await writer.afterInput(line * 500);
        if (line === 3) await db.pool.query('select pg_terminate_backend($1)', [pid]);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await writer.finish(200 * 500);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeDefined();
    expect(isTransient(failure), String(failure)).toBe(true);
    await expect(writer.abort(failure)).resolves.toBeUndefined();
    client.release(true);
  });

  it("pg-copy-streams' TypeError on its null connection is reported as the lost connection it follows", async () => {
    await db.pool.query('create unlogged table public.stage_null (_line bigint not null, a text)');
    const client = await db.pool.connect();
    client.on('error', () => {});
    const writer = new StagingWriter([client], { loadId: 1, stagingTable: 'public.stage_null', delimiter: ',' });
    writer.out.appendText(1, 'first');
    await writer.afterInput(1);
    // The state pg-copy-streams leaves a COPY in once its session is gone: no connection.
    const { copies } = writer as unknown as { copies: { connection: unknown; _gotCopyInResponse: boolean }[] };
    while (!copies[0]._gotCopyInResponse) await new Promise((resolve) => setTimeout(resolve, 5));
    const connection = copies[0].connection;
    copies[0].connection = null;
    writer.out.appendText(2, 'second');
    const failure = await writer.afterInput(2).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(String(failure)).toMatch(/^Error: Connection terminated unexpectedly \(a staging COPY lost its connection/);
    expect(isTransient(failure)).toBe(true);
    copies[0].connection = connection;
    await writer.abort(failure);
    client.release(true);
  });
});
