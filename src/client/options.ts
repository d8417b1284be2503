import { InvalidArgumentError } from '../errors.js';
import { checkHost, checkInteger, checkNumber, SERVER_DEFAULTS } from '../options.js';
import type { Tracer } from '../trace.js';

/**
 * Client options, normalized in one place. Defaults and units are in
 * {@link CLIENT_DEFAULTS}.
 */
export interface ClientOptions {
  /** Server host name or address. Default `localhost`. */
  host?: string;
  /** Server port. Default 12000, or 12443 with `tls`. */
  port?: number;
  /**
   * Milliseconds. TCP: to connect, and the longest silence from the server while
   * a reply is owed. UDP: how long each try waits for its reply.
   * Default 10000 for TCP, 1000 for UDP.
   */
  timeout?: number;
  /** UDP only: tries after the first one before giving up. Default 2 (3 tries in all). */
  retries?: number;
  /**
   * TCP only: speak TLS (1.2 or later) and verify the server's certificate.
   * `true` trusts the system's CAs; an object can name the CA, the expected
   * server name, or turn verification off. Default false.
   */
  tls?: boolean | TlsClientOptions;
  /** Reports each socket step, payload included (`upcase client --trace`). Default none. */
  tracer?: Tracer;
}

export interface TlsClientOptions {
  /** CA certificate(s) to trust instead of the system's: a PEM file path, or PEM in a Buffer. */
  ca?: string | Buffer;
  /** The name the certificate must carry (also sent as SNI). Default: `host`. */
  servername?: string;
  /** Do not verify the certificate at all (for tests; anyone in the path can read the traffic). Default false. */
  insecure?: boolean;
}

export interface NormalizedTlsClientOptions {
  ca: string | Buffer | undefined;
  servername: string | undefined;
  insecure: boolean;
}

export interface NormalizedClientOptions {
  host: string;
  port: number;
  timeout: number;
  retries: number;
  /** Null without TLS. */
  tls: NormalizedTlsClientOptions | null;
  tracer?: Tracer;
}

export const CLIENT_DEFAULTS = {
  host: 'localhost',
  port: 12000,
  tcpTimeout: 10_000, // milliseconds: connect, and server silence while a reply is owed
  udpTimeout: 1000, // milliseconds per try
  retries: 2, // UDP tries after the first
} as const;

/** Longest timer Node accepts (2^31 − 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;

export function normalizeClientOptions(options: ClientOptions, transport: 'tcp' | 'udp'): NormalizedClientOptions {
  const o = options;
  const tls = normalizeTlsClientOptions(o.tls);
  if (tls !== null && transport === 'udp') throw new InvalidArgumentError('tls', 'false over UDP (TLS runs over TCP)', o.tls);
  return {
    tls,
    host: o.host === undefined ? CLIENT_DEFAULTS.host : checkHost('host', o.host),
    port: o.port === undefined ? (tls === null ? CLIENT_DEFAULTS.port : SERVER_DEFAULTS.tlsPort) : checkPositivePort(o.port),
    timeout:
      o.timeout === undefined
        ? transport === 'tcp'
          ? CLIENT_DEFAULTS.tcpTimeout
          : CLIENT_DEFAULTS.udpTimeout
        : checkNumber('timeout', o.timeout, 1, MAX_TIMER_MS, 'a number of milliseconds from 1 to 2147483647'),
    retries: o.retries === undefined ? CLIENT_DEFAULTS.retries : checkInteger('retries', o.retries, 0, 1000),
    tracer: o.tracer,
  };
}

/** `tls` as given (boolean or object) → checked options, or null for no TLS. */
export function normalizeTlsClientOptions(value: unknown): NormalizedTlsClientOptions | null {
  if (value === undefined || value === false) return null;
  if (value === true) return { ca: undefined, servername: undefined, insecure: false };
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) {
    throw new InvalidArgumentError('tls', 'a boolean or { ca, servername, insecure }', value);
  }
  const t = value as TlsClientOptions;
  const ca = t.ca;
  if (ca !== undefined && !Buffer.isBuffer(ca) && (typeof ca !== 'string' || ca.length === 0)) {
    throw new InvalidArgumentError('tls.ca', 'a file path (string) or PEM (Buffer)', ca);
  }
  if (t.insecure !== undefined && typeof t.insecure !== 'boolean') throw new InvalidArgumentError('tls.insecure', 'a boolean', t.insecure);
  return {
    ca,
    servername: t.servername === undefined ? undefined : checkHost('tls.servername', t.servername),
    insecure: t.insecure ?? false,
  };
}

/** A client needs a real port to talk to: 1–65535. */
export function checkPositivePort(value: unknown, name = 'port'): number {
  return checkInteger(name, value, 1, 65535);
}

/** Pinger options; see {@link PING_DEFAULTS}. */
export interface PingOptions {
  /** Server host name or address. Default `localhost`. */
  host?: string;
  /** Server port. Default 12000. */
  port?: number;
  /** Pings to send; 0 sends until `stop()`. Default 0. */
  count?: number;
  /** Seconds between pings, as ping(8)'s `-i`. Default 1. */
  interval?: number;
  /** Milliseconds to wait for each reply. Default 1000. */
  timeout?: number;
  /** Bytes of payload per ping (the textbook lab's `Ping <seq> <time>`, padded). Default 56. */
  size?: number;
}

export interface NormalizedPingOptions {
  host: string;
  port: number;
  count: number;
  interval: number;
  timeout: number;
  size: number;
}

export const PING_DEFAULTS = {
  count: 0, // pings; 0 = until stopped
  interval: 1, // seconds
  timeout: 1000, // milliseconds
  size: 56, // bytes, as ping(8)
  minSize: 32, // bytes: room for "Ping <10-digit seq> <13-digit ms time>"
  minInterval: 0.001, // seconds
} as const;

export function normalizePingOptions(options: PingOptions): NormalizedPingOptions {
  const o = options;
  return {
    host: o.host === undefined ? CLIENT_DEFAULTS.host : checkHost('host', o.host),
    port: o.port === undefined ? CLIENT_DEFAULTS.port : checkPositivePort(o.port),
    count: o.count === undefined ? PING_DEFAULTS.count : checkInteger('count', o.count, 0),
    interval:
      o.interval === undefined
        ? PING_DEFAULTS.interval
        : checkNumber('interval', o.interval, PING_DEFAULTS.minInterval, MAX_TIMER_MS / 1000, 'a number of seconds >= 0.001'),
    timeout:
      o.timeout === undefined
        ? PING_DEFAULTS.timeout
        : checkNumber('timeout', o.timeout, 1, MAX_TIMER_MS, 'a number of milliseconds from 1 to 2147483647'),
    // 65507: the largest UDP payload over IPv4 (src/udp/handler.ts).
    size: o.size === undefined ? PING_DEFAULTS.size : checkInteger('size', o.size, PING_DEFAULTS.minSize, 65_507, 'bytes'),
  };
}
