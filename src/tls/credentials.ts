import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { TlsError } from '../errors.js';

/** Where a certificate or key comes from: a file path, or the PEM itself. */
export type PemSource = string | Buffer;

/** The oldest protocol version upcase speaks: TLS 1.0 and 1.1 are deprecated (RFC 8996). */
export const TLS_MIN_VERSION = 'TLSv1.2';

/** What a log line or a caller may want to know about the server certificate. */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** Hex, as OpenSSL prints it. */
  serialNumber: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
  validFrom: Date;
  validTo: Date;
}

/** A certificate chain and its key, checked to belong together. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
  certificate: CertificateInfo;
  /** The files (or `PEM`) they came from, for messages. */
  certName: string;
  keyName: string;
}

const READ_REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
};

function sourceName(source: PemSource): string {
  return typeof source === 'string' ? source : '(PEM buffer)';
}

/** The bytes of a PEM source; a file that cannot be read is a `TlsError` naming it and why. */
export async function readPem(source: PemSource, what: string): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source;
  try {
    return await readFile(source);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = (code && READ_REASONS[code]) ?? (err as Error).message;
    throw new TlsError(`cannot read ${what} ${source}: ${reason}${code ? ` (${code})` : ''}`, { tlsCode: code, cause: err });
  }
}

/** `CN=localhost` rather than Node's multi-line `CN=localhost\nO=…`. */
function oneLine(name: string): string {
  return name.split('\n').join(', ');
}

export function describeCertificate(x509: X509Certificate): CertificateInfo {
  return {
    subject: oneLine(x509.subject),
    issuer: oneLine(x509.issuer),
    serialNumber: x509.serialNumber,
    fingerprint256: x509.fingerprint256,
    validFrom: new Date(x509.validFrom),
    validTo: new Date(x509.validTo),
  };
}

/**
 * Reads and checks a certificate and key: both must be PEM, the key unencrypted,
 * and the key must be the certificate's. Every failure is a `TlsError`
 * (`UPCASE_ERR_TLS`) with a one-line message naming the file, e.g.
 * `TLS key key.pem does not match certificate cert.pem`.
 */
export async function loadTlsCredentials(certSource: PemSource, keySource: PemSource): Promise<TlsCredentials> {
  const certName = sourceName(certSource);
  const keyName = sourceName(keySource);
  const [cert, key] = await Promise.all([readPem(certSource, 'TLS certificate'), readPem(keySource, 'TLS key')]);

  if (!cert.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsError(`TLS certificate ${certName} is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)`);
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsError(`TLS certificate ${certName} cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new TlsError(`TLS key ${keyName} is not a PEM private key (no -----BEGIN … PRIVATE KEY----- line)`);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(key.toString('latin1'))) {
    throw new TlsError(`TLS key ${keyName} is encrypted; upcase needs an unencrypted key`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TlsError(`TLS key ${keyName} cannot be parsed: ${(err as Error).message}`, { tlsCode: code, cause: err });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsError(`TLS key ${keyName} does not match certificate ${certName}`);
  }
  try {
    // What the listener will do with them; catches what the checks above do not (e.g. a broken chain entry).
    tls.createSecureContext({ cert, key, minVersion: TLS_MIN_VERSION });
  } catch (err) {
    throw new TlsError(`cannot use TLS certificate ${certName} with key ${keyName}: ${(err as Error).message}`, { cause: err });
  }
  return { cert, key, certificate: describeCertificate(x509), certName, keyName };
}
