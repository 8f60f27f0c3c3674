/**
 * How the worker connects to Sign'Stash (OAuth and business endpoints): TLS verification always
 * on (no setting turns it off; `rejectUnauthorized` is explicit, so NODE_TLS_REJECT_UNAUTHORIZED
 * cannot either), a private CA added to the system's (SIGNSTASH_CA_FILE), and a client
 * certificate for mTLS to the proxy (SIGNSTASH_CLIENT_CERT_FILE / _KEY_FILE). Files are read once,
 * when the signer is built; a TLS failure maps to UPSTREAM_TLS with what to check.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { buildConnector } from 'undici';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';

type UpstreamConfig = Pick<Config['signstash'], 'connectTimeoutMs' | 'caFile' | 'clientCertFile' | 'clientKeyFile'>;

const read = (file: string, variable: string): Buffer => {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};

/** The undici `connect` options of the upstream Agent. */
export const upstreamConnectOptions = (c: UpstreamConfig): buildConnector.BuildOptions => ({
  timeout: c.connectTimeoutMs,
  rejectUnauthorized: true,
  ...(c.caFile === undefined ? {} : { ca: [...tls.rootCertificates, read(c.caFile, 'SIGNSTASH_CA_FILE').toString('utf8')] }),
  ...(c.clientCertFile === undefined ? {} : { cert: read(c.clientCertFile, 'SIGNSTASH_CLIENT_CERT_FILE') }),
  ...(c.clientKeyFile === undefined ? {} : { key: read(c.clientKeyFile, 'SIGNSTASH_CLIENT_KEY_FILE') }),
});

/**
 * The upstream Agent's connector. A TLS 1.3 server that wants a client certificate refuses it
 * after the client's handshake is done: the alert arrives as a socket error followed by 'end',
 * and undici reports the 'end' ("other side closed"). Dropping that 'end' lets undici report
 * the alert itself (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED), which tlsFailure can explain.
 */
export const upstreamConnector = (c: UpstreamConfig): buildConnector.connector => {
  const inner = buildConnector(upstreamConnectOptions(c));
  return (options, callback) =>
    inner(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      let alert = false;
      socket.on('error', (e: NodeJS.ErrnoException) => (alert ||= /^ERR_SSL_/.test(e.code ?? '')));
      const emit = socket.emit.bind(socket);
      socket.emit = (event: string | symbol, ...args: unknown[]): boolean => (alert && event === 'end' ? false : emit(event, ...args));
      return callback(null, socket);
    });
};

/** OpenSSL verification results: the upstream's certificate is not trusted for this name. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** UPSTREAM_TLS for a TLS failure (verification or handshake), undefined for anything else. */
export const tlsFailure = (err: unknown, what: string): SignspoolError | undefined => {
  const code = (err as { code?: string })?.code ?? '';
  if (VERIFY_CODES.has(code)) {
    return new SignspoolError('UPSTREAM_TLS', {
      detail: `${what}'s certificate is not trusted (${code}): set SIGNSTASH_CA_FILE to the CA that issued it, and check the host name in the URL`,
      cause: err,
    });
  }
  if (/^ERR_SSL_/.test(code)) {
    const clientCert = /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|BAD_CERTIFICATE|UNKNOWN_CA/.test(code);
    return new SignspoolError('UPSTREAM_TLS', {
      detail: `${what} refused the TLS handshake (${code})${clientCert ? ': it may require a client certificate: check SIGNSTASH_CLIENT_CERT_FILE and SIGNSTASH_CLIENT_KEY_FILE' : ''}`,
      cause: err,
    });
  }
  return undefined;
};
