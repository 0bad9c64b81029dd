import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A certificate and its private key, as PEM files. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface TestCertificates {
  /** The CA that signed the server's and the client's certificates. */
  ca: CertificateFiles;
  /** A CA that signed nothing here: trusting it alone must refuse the server. */
  otherCa: CertificateFiles;
  /** The server's certificate: CN and subjectAltName `localhost`, nothing else (no IP address). */
  server: CertificateFiles;
  /** A client certificate for the role `user` (its CN), for pg_hba's `cert` method. */
  client: CertificateFiles;
}

/** Why openssl cannot make the certificates here, or undefined when it can. */
export function opensslMissing(): string | undefined {
  const probe = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : 'the openssl command is not installed (it makes the test certificates)';
}

/**
 * A CA, a server certificate for `localhost` and a client certificate for `user` signed by
 * it, and an unrelated second CA, made with the openssl CLI in `dir`. EC P-256 keys: quick
 * to make. Valid for two days.
 */
export function makeTestCertificates(dir: string, user: string): TestCertificates {
  mkdirSync(dir, { recursive: true });
  const ca = selfSignedCa(dir, 'ca', 'pgferry test CA');
  const otherCa = selfSignedCa(dir, 'other-ca', 'pgferry unrelated CA');
  const server = signed(dir, 'server', 'localhost', ca, 'subjectAltName=DNS:localhost');
  const client = signed(dir, 'client', user, ca);
  return { ca, otherCa, server, client };
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function selfSignedCa(dir: string, name: string, commonName: string): CertificateFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  openssl(
    ['req', '-x509', ...NEW_KEY, '-keyout', files.key, '-out', files.cert, '-days', '2']
      .concat(['-subj', `/CN=${commonName}`])
      .concat(['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']),
  );
  return files;
}

function signed(dir: string, name: string, commonName: string, ca: CertificateFiles, extension = ''): CertificateFiles {
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const request = path.join(dir, `${name}.csr`);
  const extensions = path.join(dir, `${name}.ext`);
  writeFileSync(extensions, `basicConstraints=CA:FALSE\n${extension}\n`);
  openssl(['req', '-new', ...NEW_KEY, '-keyout', files.key, '-out', request, '-subj', `/CN=${commonName}`]);
  openssl(
    ['x509', '-req', '-in', request, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial'].concat([
      '-out',
      files.cert,
      '-days',
      '2',
      '-extfile',
      extensions,
    ]),
  );
  return files;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
