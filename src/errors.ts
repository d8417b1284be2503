/**
 * One error hierarchy for the whole library. Every error upcase raises is an
 * `UpcaseError`, and each class has exactly one stable `.code` (listed in
 * docs/protocol.md). Network errors are worded in one place,
 * {@link networkError}; {@link exitStatusOf} says how a command line ends for
 * an error.
 */

export type UpcaseErrorCode =
  | 'UPCASE_ERR_INVALID_ARG'
  | 'UPCASE_ERR_LISTEN'
  | 'UPCASE_ERR_CONNECT'
  | 'UPCASE_ERR_RESOLVE'
  | 'UPCASE_ERR_SOCKET'
  | 'UPCASE_ERR_TIMEOUT'
  | 'UPCASE_ERR_MESSAGE_TOO_LARGE'
  | 'UPCASE_ERR_CLOSED'
  | 'UPCASE_ERR_PROXY_PROTOCOL'
  | 'UPCASE_ERR_WORKER'
  | 'UPCASE_ERR_TLS';

/** The base class: `instanceof UpcaseError` catches everything upcase throws. */
export class UpcaseError extends Error {
  readonly code: UpcaseErrorCode;

  constructor(code: UpcaseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpcaseError';
    this.code = code;
  }
}

/** `UPCASE_ERR_INVALID_ARG`: an option or argument is out of range or of the wrong type. */
export class InvalidArgumentError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_INVALID_ARG';
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

/** `UPCASE_ERR_CLOSED`: the object is not in a state for the call (closed, not listening yet, …). */
export class ClosedError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_CLOSED';

  constructor(message: string) {
    super('UPCASE_ERR_CLOSED', message);
    this.name = 'ClosedError';
  }
}

/** `UPCASE_ERR_WORKER`: a cluster worker died while starting, or a cluster class was used in the wrong process. */
export class WorkerError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_WORKER';

  constructor(message: string) {
    super('UPCASE_ERR_WORKER', message);
    this.name = 'WorkerError';
  }
}

/** The transport a network error happened on: plain TCP, UDP, or TCP over TLS. */
export type Transport = 'tcp' | 'udp' | 'tls';

/** Where a network error happened: the transport, and the host (name or address) and port as given. */
export interface NetworkLocation {
  transport: Transport;
  address: string;
  port: number;
}

interface SystemErrorLike {
  code?: string;
  message?: string;
  errors?: SystemErrorLike[];
}

type NetworkErrorCode = 'UPCASE_ERR_LISTEN' | 'UPCASE_ERR_CONNECT' | 'UPCASE_ERR_RESOLVE' | 'UPCASE_ERR_SOCKET' | 'UPCASE_ERR_TIMEOUT';

/**
 * The common base of the network errors ({@link ListenError}, {@link ConnectError},
 * {@link ResolveError}, {@link SocketError}, {@link TimeoutError}). Each keeps where
 * it happened, the OS error code as `syscallCode` (`EADDRINUSE`, `ECONNREFUSED`, …;
 * undefined for a timeout upcase measured itself) and the OS error as `cause`.
 * Each subclass has one code, its static `code` (`ListenError.code` is `UPCASE_ERR_LISTEN`).
 */
export abstract class NetworkError extends UpcaseError {
  declare static readonly code: NetworkErrorCode;
  declare readonly code: NetworkErrorCode;
  /** The OS error code, e.g. `EADDRINUSE`, when there is one. */
  readonly syscallCode: string | undefined;
  readonly transport: Transport;
  /** The host name or address as given (not the resolved address). */
  readonly address: string;
  readonly port: number;
  /** `tcpRequest()` only: the part of the reply that had arrived when the exchange failed. */
  received: Buffer | undefined;

  constructor(message: string, where: NetworkLocation, cause?: unknown, syscallCode?: string) {
    super(new.target.code, message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.syscallCode = syscallCode ?? systemCode(cause);
    this.transport = where.transport;
    this.address = where.address;
    this.port = where.port;
  }
}

/** `UPCASE_ERR_LISTEN`: a listener could not be bound (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, …). */
export class ListenError extends NetworkError {
  static override readonly code = 'UPCASE_ERR_LISTEN';
  declare readonly code: 'UPCASE_ERR_LISTEN';
}

/** `UPCASE_ERR_CONNECT`: the server could not be reached (`ECONNREFUSED`, `EHOSTUNREACH`, …). */
export class ConnectError extends NetworkError {
  static override readonly code = 'UPCASE_ERR_CONNECT';
  declare readonly code: 'UPCASE_ERR_CONNECT';
}

/** `UPCASE_ERR_RESOLVE`: a host name that does not resolve (`ENOTFOUND`, `EAI_AGAIN`, …), to listen or to connect. */
export class ResolveError extends NetworkError {
  static override readonly code = 'UPCASE_ERR_RESOLVE';
  declare readonly code: 'UPCASE_ERR_RESOLVE';
}

/** `UPCASE_ERR_SOCKET`: a socket failed after it was set up (a reset, a failed send, …). */
export class SocketError extends NetworkError {
  static override readonly code = 'UPCASE_ERR_SOCKET';
  declare readonly code: 'UPCASE_ERR_SOCKET';
}

/** `UPCASE_ERR_TIMEOUT`: something took longer than its timeout (connecting, or waiting for a reply). */
export class TimeoutError extends NetworkError {
  static override readonly code = 'UPCASE_ERR_TIMEOUT';
  declare readonly code: 'UPCASE_ERR_TIMEOUT';
}

/** `UPCASE_ERR_MESSAGE_TOO_LARGE`: a message that cannot be carried, e.g. a datagram over the UDP maximum. */
export class MessageTooLargeError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_MESSAGE_TOO_LARGE';
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
 * `UPCASE_ERR_PROXY_PROTOCOL`: bytes that are not a valid PROXY protocol header
 * (docs/protocol.md, PROXY protocol). `reason`: `missing` (no PROXY signature at
 * all), `malformed`, or `too_large`.
 */
export class ProxyProtocolError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_PROXY_PROTOCOL';
  readonly reason: 'missing' | 'malformed' | 'too_large';

  constructor(reason: 'missing' | 'malformed' | 'too_large', message: string) {
    super('UPCASE_ERR_PROXY_PROTOCOL', message);
    this.name = 'ProxyProtocolError';
    this.reason = reason;
  }
}

/**
 * `UPCASE_ERR_TLS`: a TLS problem. `stage` says which: `credentials`, a
 * certificate, key or CA file that cannot be used (missing file, not PEM, key
 * and certificate do not match), a configuration error; or `handshake`, a
 * handshake or verification that failed. `tlsCode` is OpenSSL's or Node's code
 * when there is one, e.g. `CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID`, `ENOENT`.
 */
export class TlsError extends UpcaseError {
  declare readonly code: 'UPCASE_ERR_TLS';
  readonly stage: 'credentials' | 'handshake';
  readonly tlsCode: string | undefined;

  constructor(message: string, options: { stage?: 'credentials' | 'handshake'; tlsCode?: string; cause?: unknown } = {}) {
    super('UPCASE_ERR_TLS', message, { cause: options.cause });
    this.name = 'TlsError';
    this.stage = options.stage ?? 'credentials';
    this.tlsCode = options.tlsCode;
  }
}

/** Exit status of a run that ended as asked (a server drained on a signal, a client got every reply). */
export const EXIT_OK = 0;
/** Exit status for a usage or configuration error, as in ping(8) and most Unix tools. */
export const EXIT_USAGE = 2;
/** Exit status for a network error, a timeout, or any other failure at run time. */
export const EXIT_FAILURE = 1;

/**
 * The exit status a command line gives for `err`: 2 for a usage or configuration
 * error (an {@link InvalidArgumentError}, a host name that does not resolve, as
 * ping(8) does, and a TLS certificate, key or CA file that cannot be used);
 * 1 for everything else (network errors, timeouts, a worker that died).
 */
export function exitStatusOf(err: unknown): typeof EXIT_USAGE | typeof EXIT_FAILURE {
  if (!(err instanceof UpcaseError)) return EXIT_FAILURE;
  if (err.code === 'UPCASE_ERR_INVALID_ARG' || err.code === 'UPCASE_ERR_RESOLVE') return EXIT_USAGE;
  if (err instanceof TlsError && err.stage === 'credentials') return EXIT_USAGE;
  return EXIT_FAILURE;
}

/** `host:port` with IPv6 literals bracketed, as users type them. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The OS error code of `err`, looking inside the AggregateError of a multi-address connect. */
export function systemCode(err: unknown): string | undefined {
  const sys = err as SystemErrorLike | undefined;
  if (typeof sys !== 'object' || sys === null) return undefined;
  return sys.code ?? sys.errors?.find((e) => e.code !== undefined)?.code;
}

/** Host name lookup failures (getaddrinfo), whatever the operation. */
const RESOLVE_REASONS: Record<string, string> = {
  ENOTFOUND: 'host not found',
  EAI_NONAME: 'host not found',
  ENODATA: 'host has no address',
  EAI_NODATA: 'host has no address',
  EAI_AGAIN: 'temporary failure in name resolution',
  EAI_FAIL: 'name server failure',
};

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  EAFNOSUPPORT: 'address family not supported',
};

/** What can go wrong on the way to the peer, whether connecting or later. */
const PATH_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing is listening there)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
};

const CONNECT_REASONS: Record<string, string> = { ...PATH_REASONS, EADDRNOTAVAIL: 'address not available' };

const SOCKET_REASONS: Record<string, string> = { ...PATH_REASONS, EPIPE: 'connection reset' };

/**
 * What failed:
 * - `listen`: binding a listener;
 * - `connect`: reaching the server (a UDP "port unreachable" is one too);
 * - `exchange`: a socket that failed after it was set up; `received` counts the TCP reply bytes so far;
 * - `timeout`: nothing came in time; `phase` says what was awaited and `after` how long (`after 500 ms`,
 *   `for 150 ms` of silence, `after 3 tries`).
 */
export type NetworkFailure =
  | { op: 'listen' | 'connect' }
  | { op: 'exchange'; received?: number }
  | { op: 'timeout'; phase: 'connect' | 'handshake' | 'reply'; after: string };

/**
 * The one place network errors are worded and classified. `cause` is the OS
 * error (kept as `.cause`, its code as `.syscallCode`); an `UpcaseError` is
 * returned as it is, so wrapping twice is harmless. The message names the host
 * and port as given, the transport, and the reason in plain words:
 *
 * - `cannot listen on [::]:12000 (udp): address already in use`
 * - `cannot connect to 127.0.0.1:12000 (tcp): connection refused (nothing is listening there)`
 * - `cannot resolve no-such-host.invalid (udp): host not found` (whatever the operation)
 * - `connection reset by 127.0.0.1:12000 (tcp) after 3 reply bytes`
 * - `no reply from 127.0.0.1:12000 (udp) after 3 tries`, `timed out connecting to 127.0.0.1:12000 (tcp) after 500 ms`
 */
export function networkError(failure: NetworkFailure, where: NetworkLocation, cause?: unknown): NetworkError {
  if (cause instanceof NetworkError) return cause;
  const { transport, address, port } = where;
  const target = `${formatHostPort(address, port)} (${transport})`;
  if (failure.op === 'timeout') {
    const what = { connect: 'timed out connecting to', handshake: 'timed out in the TLS handshake with', reply: 'no reply from' }[
      failure.phase
    ];
    const message = `${what} ${target} ${failure.after}`;
    return new TimeoutError(message, where, cause);
  }
  const code = systemCode(cause);
  // An AggregateError (several addresses tried) has no code of its own; keep the first one found.
  const reasonOf = (table: Record<string, string>): string => {
    const known = code === undefined ? undefined : table[code];
    if (known !== undefined) return known;
    const text = (cause as SystemErrorLike | undefined)?.message || String(cause);
    return code !== undefined && !text.includes(code) ? `${text} (${code})` : text;
  };
  if (code !== undefined && RESOLVE_REASONS[code] !== undefined) {
    return new ResolveError(`cannot resolve ${address} (${transport}): ${RESOLVE_REASONS[code]}`, where, cause, code);
  }
  switch (failure.op) {
    case 'listen':
      return new ListenError(`cannot listen on ${target}: ${reasonOf(LISTEN_REASONS)}`, where, cause, code);
    case 'connect': {
      const message = `cannot connect to ${target}: ${reasonOf(CONNECT_REASONS)}`;
      return code === 'ETIMEDOUT' ? new TimeoutError(message, where, cause, code) : new ConnectError(message, where, cause, code);
    }
    case 'exchange': {
      const after = failure.received === undefined ? '' : ` after ${failure.received} reply bytes`;
      if (code === 'ECONNRESET' || code === 'EPIPE') return new SocketError(`connection reset by ${target}${after}`, where, cause, code);
      return new SocketError(`${target}: ${reasonOf(SOCKET_REASONS)}${after}`, where, cause, code);
    }
  }
}

/** A network error as it crosses a process boundary (a cluster worker's IPC message to its primary). */
export interface SerializedError {
  name: string;
  code: string | undefined;
  message: string;
  syscallCode?: string;
  where?: NetworkLocation;
  option?: string;
  value?: unknown;
  stage?: 'credentials' | 'handshake';
  tlsCode?: string;
  cause?: { code?: string; message: string };
}

/** `err` as plain data for IPC; {@link deserializeError} rebuilds the same class, code, location and cause. */
export function serializeError(err: unknown): SerializedError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { name?: string; code?: unknown; message?: string; cause?: unknown };
  const cause = e.cause as SystemErrorLike | undefined;
  return {
    name: e.name ?? 'Error',
    code: typeof e.code === 'string' ? e.code : undefined,
    message: e.message ?? String(err),
    ...(err instanceof NetworkError
      ? { syscallCode: err.syscallCode, where: { transport: err.transport, address: err.address, port: err.port } }
      : {}),
    ...(err instanceof InvalidArgumentError ? { option: err.option, value: err.value } : {}),
    ...(err instanceof TlsError ? { stage: err.stage, tlsCode: err.tlsCode } : {}),
    ...(typeof cause === 'object' && cause !== null ? { cause: { code: cause.code, message: String(cause.message) } } : {}),
  };
}

const NETWORK_CLASSES = new Map(
  [ListenError, ConnectError, ResolveError, SocketError, TimeoutError].map((c) => [c.code as string, c] as const),
);

/** The error {@link serializeError} described: the same class and fields; the cause is an `Error` with the OS code. */
export function deserializeError(data: SerializedError): UpcaseError {
  const cause = data.cause === undefined ? undefined : Object.assign(new Error(data.cause.message), { code: data.cause.code });
  const networkClass = data.code === undefined ? undefined : NETWORK_CLASSES.get(data.code);
  if (networkClass !== undefined && data.where !== undefined) return new networkClass(data.message, data.where, cause, data.syscallCode);
  switch (data.code) {
    case 'UPCASE_ERR_INVALID_ARG':
      return Object.assign(new InvalidArgumentError(data.option ?? '', '', data.value), { message: data.message });
    case 'UPCASE_ERR_TLS':
      return new TlsError(data.message, { stage: data.stage, tlsCode: data.tlsCode, cause });
    case 'UPCASE_ERR_CLOSED':
      return new ClosedError(data.message);
    default:
      return new WorkerError(data.message);
  }
}

/** A value as an error message shows it: text as it is, anything else as JSON (NaN and Infinity as such). */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  // JSON.stringify would show NaN and Infinity as `null`.
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
