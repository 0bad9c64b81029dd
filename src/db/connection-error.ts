import { PgferryError } from '../errors.js';
import type { ConnectionSettings } from './connection-config.js';

/** node-postgres's error when the server answers an SSLRequest with no. */
export const SERVER_REFUSED_TLS = 'The server does not support SSL connections';

/** Node's codes for a certificate chain that does not lead to a trusted root. */
const UNTRUSTED_CHAIN = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/** Whether the TLS handshake (or the check of the server's certificate) failed. */
export function isTlsError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return (
    typeof code === 'string' &&
    (UNTRUSTED_CHAIN.has(code) || /^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code) || code.startsWith('ERR_OSSL'))
  );
}

/**
 * A failed connection's error, as one line a user can act on when TLS is why it failed (the
 * server refused TLS, its certificate is not trusted or not for that host); other errors as
 * they are.
 */
export function connectionError(error: unknown, settings: ConnectionSettings): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  const under = `cannot connect to ${settings.address} with sslmode=${settings.sslmode}`;
  const root =
    settings.rootCert === 'system'
      ? `the system's trusted roots`
      : settings.rootCert
        ? `the root certificate "${settings.rootCert}"`
        : 'the trusted roots';
  let message: string | undefined;
  if (error.message === SERVER_REFUSED_TLS) {
    message =
      `${under}: the server does not accept TLS connections; turn ssl on in the server, ` +
      `or connect with sslmode=prefer (TLS when the server offers it) or sslmode=disable`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    message =
      `${under}: the server's certificate is not for this host (${error.message}); connect by a name ` +
      `the certificate holds, or use sslmode=verify-ca to check the certificate's CA only`;
  } else if (typeof code === 'string' && UNTRUSTED_CHAIN.has(code)) {
    message =
      `${under}: the server's certificate is not signed by ${root} (${error.message}); ` +
      `name the CA that signed it with sslrootcert`;
  } else if (isTlsError(error)) {
    message = `${under}: TLS failed: ${error.message}`;
  }
  return message ? new PgferryError(message, { cause: error }) : error;
}
