import net from 'node:net';
import tls from 'node:tls';
import { formatHostPort, networkError, TlsError } from '../errors.js';
import { readPem, TLS_MIN_VERSION } from '../tls/credentials.js';
import type { NormalizedClientOptions } from './options.js';

interface OpenSslError extends NodeJS.ErrnoException {
  /** OpenSSL's reason string, e.g. `wrong version number`. */
  reason?: string;
}

/** What OpenSSL says when the other end is not speaking TLS (for one, our plain port echoing the ClientHello uppercased). */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_UNEXPECTED_MESSAGE',
  'ERR_SSL_RECORD_LAYER_FAILURE',
]);

/** Why a handshake failed, in words: Node's message for verification errors, OpenSSL's reason otherwise. */
function handshakeReason(err: OpenSslError): string {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'the server closed the connection during the handshake';
  if (err.code !== undefined && NOT_TLS.has(err.code)) {
    return `${err.reason ?? 'not TLS'}: the server did not answer in TLS (a plain TCP port?)`;
  }
  // Node's message names the host and the certificate's names; its `reason` lacks the first half.
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return err.message;
  if (err.reason !== undefined) return err.reason;
  return err.message.split('\n')[0] ?? String(err);
}

/**
 * Opens a TLS connection (TLS 1.2 or later, half-open allowed) and resolves once
 * the handshake is done and the certificate verified (unless `insecure`).
 *
 * Rejects with `UPCASE_ERR_CONNECT` if TCP cannot connect, `UPCASE_ERR_TIMEOUT`
 * after `timeout` seconds (connect and handshake together), or a `TlsError`
 * (`UPCASE_ERR_TLS`) saying why the handshake or verification failed, e.g.
 * `TLS to 127.0.0.1:12443 failed: certificate has expired (CERT_HAS_EXPIRED)`,
 * with `tlsCode` set to that code.
 */
export async function connectTls(o: NormalizedClientOptions): Promise<tls.TLSSocket> {
  const t = o.tls ?? { ca: undefined, servername: undefined, insecure: false };
  const ca = t.ca === undefined ? undefined : await readPem(t.ca, 'CA file');
  const target = formatHostPort(o.host, o.port);
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: o.host,
    port: o.port,
    // SNI carries names only (RFC 6066 §3); for an IP the certificate is checked against the IP.
    servername: t.servername ?? (net.isIP(o.host) === 0 ? o.host : undefined),
    ca,
    rejectUnauthorized: !t.insecure,
    minVersion: TLS_MIN_VERSION,
    // Our end of input and the server's are independent, as over plain TCP (Node reads
    // this option; @types/node does not list it).
    allowHalfOpen: true,
  };
  const socket = tls.connect(options);
  let tcpConnected = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      const phase = tcpConnected ? 'handshake' : 'connect';
      reject(networkError({ op: 'timeout', phase, after: `after ${o.timeout} s` }, { transport: 'tls', address: o.host, port: o.port }));
    }, o.timeout * 1000);
    timer.unref();
    const onError = (err: OpenSslError): void => {
      clearTimeout(timer);
      socket.destroy();
      if (!tcpConnected) {
        reject(networkError({ op: 'connect' }, { transport: 'tls', address: o.host, port: o.port }, err));
        return;
      }
      const code = err.code;
      reject(
        new TlsError(`TLS to ${target} failed: ${handshakeReason(err)}${code ? ` (${code})` : ''}`, {
          stage: 'handshake',
          tlsCode: code,
          cause: err,
        }),
      );
    };
    socket.once('connect', () => {
      tcpConnected = true;
      socket.setNoDelay(true);
    });
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
