/**
 * One error hierarchy for the whole library. Every error upcase raises is an
 * `UpcaseError` with a stable `.code` (listed in docs/protocol.md). Errors
 * that wrap an OS error keep its `errno` code as `.syscallCode` plus the
 * `address`/`port`, and the original as `cause`.
 */

export type UpcaseErrorCode =
  | 'UPCASE_ERR_INVALID_ARG'
  | 'UPCASE_ERR_LISTEN'
  | 'UPCASE_ERR_CONNECT'
  | 'UPCASE_ERR_TIMEOUT'
  | 'UPCASE_ERR_MESSAGE_TOO_LARGE'
  | 'UPCASE_ERR_CLOSED'
  | 'UPCASE_ERR_SOCKET'
  | 'UPCASE_ERR_PROXY_PROTOCOL'
  | 'UPCASE_ERR_WORKER'
  | 'UPCASE_ERR_TLS';

export class UpcaseError extends Error {
  readonly code: UpcaseErrorCode;

  constructor(code: UpcaseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpcaseError';
    this.code = code;
  }
}

/** An option or argument is out of range or of the wrong type. */
export class InvalidArgumentError extends UpcaseError {
  readonly option: string;
  /** What a valid value is, e.g. `a non-negative number of seconds`. */
  readonly expected: string;
  readonly value: unknown;

  constructor(option: string, expected: string, value: unknown) {
    super('UPCASE_ERR_INVALID_ARG', `Expected \`${option}\` to be ${expected}, got \`${formatValue(value)}\``);
    this.name = 'InvalidArgumentError';
    this.option = option;
    this.expected = expected;
    this.value = value;
  }
}

export type Transport = 'tcp' | 'udp' | 'tls';

interface SystemErrorLike {
  code?: string;
  errno?: number;
  syscall?: string;
  message?: string;
}

/** Wraps an OS-level failure (EADDRINUSE, ECONNREFUSED, …) with where it happened. */
export class NetworkError extends UpcaseError {
  /** The OS error code, e.g. `EADDRINUSE`, when there is one. */
  readonly syscallCode: string | undefined;
  readonly transport: Transport;
  readonly address: string;
  readonly port: number;

  constructor(
    code: 'UPCASE_ERR_LISTEN' | 'UPCASE_ERR_CONNECT' | 'UPCASE_ERR_SOCKET' | 'UPCASE_ERR_TIMEOUT',
    message: string,
    where: { transport: Transport; address: string; port: number },
    cause?: unknown,
  ) {
    super(code, message, { cause });
    this.name = 'NetworkError';
    this.syscallCode = (cause as SystemErrorLike | undefined)?.code;
    this.transport = where.transport;
    this.address = where.address;
    this.port = where.port;
  }
}

/** A message that cannot be carried, e.g. a datagram over the UDP maximum. */
export class MessageTooLargeError extends UpcaseError {
  readonly size: number;
  readonly limit: number;

  constructor(size: number, limit: number, what = 'message') {
    super('UPCASE_ERR_MESSAGE_TOO_LARGE', `${what} of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = 'MessageTooLargeError';
    this.size = size;
    this.limit = limit;
  }
}

/**
 * Bytes that are not a valid PROXY protocol header (docs/protocol.md, PROXY protocol).
 * `reason`: `missing` (no PROXY signature at all), `malformed`, or `too_large`.
 */
export class ProxyProtocolError extends UpcaseError {
  readonly reason: 'missing' | 'malformed' | 'too_large';

  constructor(reason: 'missing' | 'malformed' | 'too_large', message: string) {
    super('UPCASE_ERR_PROXY_PROTOCOL', message);
    this.name = 'ProxyProtocolError';
    this.reason = reason;
  }
}

/**
 * A TLS problem: a certificate or key that cannot be used (missing file, not PEM,
 * key and certificate do not match), or a handshake that failed. `tlsCode` is
 * OpenSSL's or Node's code when there is one, e.g. `CERT_HAS_EXPIRED`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_WRONG_VERSION_NUMBER`.
 */
export class TlsError extends UpcaseError {
  readonly tlsCode: string | undefined;

  constructor(message: string, options: { tlsCode?: string; cause?: unknown } = {}) {
    super('UPCASE_ERR_TLS', message, { cause: options.cause });
    this.name = 'TlsError';
    this.tlsCode = options.tlsCode;
  }
}

export class TimeoutError extends NetworkError {
  constructor(message: string, where: { transport: Transport; address: string; port: number }) {
    super('UPCASE_ERR_TIMEOUT', message, where);
    this.name = 'TimeoutError';
  }
}

/** `host:port` with IPv6 literals bracketed, as users type them. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  EAFNOSUPPORT: 'address family not supported',
};

export function listenError(err: unknown, transport: Transport, address: string, port: number): NetworkError {
  const sys = err as SystemErrorLike;
  const reason = (sys.code && LISTEN_REASONS[sys.code]) ?? sys.message ?? String(err);
  const codeSuffix = sys.code ? ` (${sys.code})` : '';
  return new NetworkError(
    'UPCASE_ERR_LISTEN',
    `cannot listen on ${formatHostPort(address, port)} (${transport}): ${reason}${codeSuffix}`,
    { transport, address, port },
    err,
  );
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  // JSON.stringify would show NaN and Infinity as `null`.
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
