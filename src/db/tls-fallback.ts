import type pg from 'pg';

import { isDatabaseError } from '../errors.js';
import type { ConnectionSettings } from './connection-config.js';
import { connectionError, isTlsError, SERVER_REFUSED_TLS } from './connection-error.js';

/**
 * The config to connect with after the first connection of `settings` failed with `error`, as
 * libpq's `prefer` and `allow` do; undefined when there is nothing else to try. node-postgres
 * tries one way only, so pgferry decides once, on its first connection, and the pool (and
 * every pool or client made from its options) keeps that way: a server whose `ssl` setting
 * changes meanwhile is seen by the next process.
 *
 * - `prefer`: TLS first; without it when the server refuses TLS, the TLS handshake fails, or
 *   the server refuses the connection (pg_hba.conf: a `hostnossl` line alone matches).
 * - `allow`: without TLS first; with it when the server refuses the connection (a `hostssl`
 *   line alone matches).
 *
 * libpq retries on any error the server sends while the connection starts; here, on those of
 * SQLSTATE class 28 (pg_hba.conf, authentication), which are the ones TLS can change.
 */
export function tlsFallback(settings: ConnectionSettings, error: unknown): pg.ClientConfig | undefined {
  if (!settings.fallback) return undefined;
  const refusedConnection = isDatabaseError(error) && error.code?.startsWith('28') === true;
  if (settings.sslmode === 'prefer' && (isServerRefusingTls(error) || isTlsError(error) || refusedConnection))
    return settings.fallback;
  if (settings.sslmode === 'allow' && refusedConnection) return settings.fallback;
  return undefined;
}

function isServerRefusingTls(error: unknown): boolean {
  return error instanceof Error && error.message === SERVER_REFUSED_TLS;
}

/**
 * Runs `connect` with the config of `settings`, and again with its fallback when tlsFallback()
 * says so. A failure is thrown as connectionError() tells it. `connect` cleans up after its
 * own failure.
 *
 * @example
 *   const client = await connectWithTlsFallback(settings, async (config) => {
 *     const client = new pg.Client(config);
 *     await client.connect();
 *     return client;
 *   });
 */
export async function connectWithTlsFallback<T>(
  settings: ConnectionSettings,
  connect: (config: pg.ClientConfig) => Promise<T>,
): Promise<T> {
  try {
    return await connect(settings.config);
  } catch (error) {
    const fallback = tlsFallback(settings, error);
    if (!fallback) throw connectionError(error, settings);
    try {
      return await connect(fallback);
    } catch (second) {
      throw connectionError(second, settings);
    }
  }
}
