import { formatHostPort, NetworkError, type Transport } from '../errors.js';

interface SystemErrorLike {
  code?: string;
  message?: string;
  errors?: SystemErrorLike[];
}

const CONNECT_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing is listening there)',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
};

/** The OS error code of `err`, looking inside the AggregateError of a multi-address connect. */
export function systemCode(err: unknown): string | undefined {
  const sys = err as SystemErrorLike | undefined;
  return sys?.code ?? sys?.errors?.find((e) => e.code !== undefined)?.code;
}

/** A failure to reach `host:port`, as `UPCASE_ERR_CONNECT` (or `UPCASE_ERR_TIMEOUT` for ETIMEDOUT). */
export function connectError(err: unknown, transport: Transport, host: string, port: number): NetworkError {
  if (err instanceof NetworkError) return err;
  const code = systemCode(err);
  const reason = (code && CONNECT_REASONS[code]) ?? (err as SystemErrorLike).message ?? String(err);
  const where = { transport, address: host, port };
  const message = `cannot connect to ${formatHostPort(host, port)} (${transport}): ${reason}${code ? ` (${code})` : ''}`;
  return new NetworkError(code === 'ETIMEDOUT' ? 'UPCASE_ERR_TIMEOUT' : 'UPCASE_ERR_CONNECT', message, where, withCode(err, code));
}

/** A socket failure after the connection was made (reset, broken pipe, …), as `UPCASE_ERR_SOCKET`. */
export function socketError(err: unknown, transport: Transport, host: string, port: number, received: number): NetworkError {
  if (err instanceof NetworkError) return err;
  const code = systemCode(err);
  const reason = code === 'ECONNRESET' || code === 'EPIPE' ? 'connection reset' : ((err as SystemErrorLike).message ?? String(err));
  const message = `${reason} by ${formatHostPort(host, port)} (${transport}) after ${received} reply bytes${code ? ` (${code})` : ''}`;
  return new NetworkError('UPCASE_ERR_SOCKET', message, { transport, address: host, port }, withCode(err, code));
}

/** NetworkError reads `syscallCode` from `cause.code`; an AggregateError keeps it one level down. */
function withCode(err: unknown, code: string | undefined): unknown {
  const sys = err as SystemErrorLike | undefined;
  if (code === undefined || sys?.code !== undefined || typeof err !== 'object' || err === null) return err;
  return Object.assign(new Error((err as Error).message, { cause: err }), { code });
}

/**
 * A TCP exchange that failed (reset, timeout) after part of the reply had
 * arrived. `received` holds that part: the textbook's server, for one, reads
 * 1024 bytes, answers them and closes, which resets a longer request.
 */
export class IncompleteReplyError extends NetworkError {
  readonly received: Buffer;

  constructor(inner: NetworkError, received: Buffer) {
    super(inner.code as 'UPCASE_ERR_SOCKET' | 'UPCASE_ERR_TIMEOUT', inner.message, inner, inner.cause);
    this.name = 'IncompleteReplyError';
    this.received = received;
  }
}
