import { InvalidArgumentError } from './errors.js';
import type { Logger } from 'pino';
import { formatCidr, parseCidr } from './proxy/trust.js';

/**
 * All server options, normalized in one place. Defaults and units are in
 * {@link SERVER_DEFAULTS}; docs/operations.md explains why each default is what it is.
 */
export interface ServerOptions {
  /** Address to listen on. Default `::` (dual-stack), falling back to `0.0.0.0` without IPv6. */
  host?: string;
  /** Port for both TCP and UDP. Default 12000; 0 picks a free port (the same number for both). */
  port?: number;
  /** Serve TCP. Default true. */
  tcp?: boolean;
  /** Serve UDP. Default true. */
  udp?: boolean;
  /**
   * Open TCP connections at most; connections past it are closed at once, counted
   * (`stats.connectionsRefused`) and logged rate-limited. Lowered automatically
   * when the open-file limit cannot hold that many. Default 1024.
   */
  maxConnections?: number;
  /**
   * Open TCP connections per source at most (an IPv4 address, or an IPv6 /64; with
   * `proxyProtocol`, the client address from the header); more are closed at once
   * (`stats.connectionsRefusedPerSource`). 0 = no per-source limit. Default 256, a
   * quarter of the default `maxConnections`: one address cannot take the whole server.
   */
  maxConnectionsPerSource?: number;
  /** Seconds without traffic in either direction before a TCP connection is closed; 0 disables. Default 60. */
  idleTimeout?: number;
  /**
   * Seconds replies may stay owed to a client that does not read them (writes
   * backed up) before the connection is reset; 0 disables. Default 30.
   */
  writeTimeout?: number;
  /** Datagrams per second per source address (IPv6: per /64 network); 0 disables. Default 100. */
  udpRateLimit?: number;
  /** Burst allowance of the UDP rate limit, in datagrams (>= 1). Default: equal to `udpRateLimit`, at least 1. */
  udpRateBurst?: number;
  /** Reply to UDP source ports below 1024. Default false (loop protection). */
  udpAllowLowPorts?: boolean;
  /** Probability (0..1) of dropping a UDP request on purpose, to simulate loss. Default 0. */
  dropRate?: number;
  /**
   * Seconds to let open TCP connections finish on `close({ drain: true })`. Default 8: it fits,
   * with room to exit, inside `docker stop`'s 10 s before SIGKILL (docs/operations.md).
   */
  drainTimeout?: number;
  /**
   * Expect a PROXY protocol v1 or v2 header on every TCP connection (behind nginx
   * `proxy_protocol on`, HAProxy `send-proxy(-v2)`); its client address is used in
   * logs and per-address limits. Connections without a valid header are closed.
   * Default false. UDP is not affected.
   */
  proxyProtocol?: boolean;
  /**
   * With `proxyProtocol`: peers allowed to connect, as CIDR blocks or addresses
   * (an array, or one comma-separated string). Others are refused. Default
   * `127.0.0.0/8` and `::1/128` (a balancer on the same host). Setting it without
   * `proxyProtocol` is an error.
   */
  trustedProxies?: string | readonly string[];
  /** With `proxyProtocol`: seconds to wait for the header before closing. Default 5. */
  proxyHeaderTimeout?: number;
  /**
   * UDP transport: `native` (batched recvmmsg/sendmmsg addon), `dgram` (node:dgram),
   * or `auto` (native when it was built). Both behave identically. Default `auto`.
   */
  udpTransport?: UdpTransportChoice;
  /**
   * TCP transport for plain (not TLS) connections: `native` (served by the C addon
   * after node:net accepts them), `stream` (net.Socket streams), or `auto` (native
   * when it was built). Both behave identically. Default `auto`.
   */
  tcpTransport?: TcpTransportChoice;
  /**
   * TLS certificate, PEM: a file path, or the PEM itself as a Buffer. May hold the
   * chain (server certificate first, then intermediates). Together with `tlsKey`
   * it turns on a TCP-over-TLS listener on `tlsPort`. Default: no TLS.
   */
  tlsCert?: string | Buffer;
  /** TLS private key (PEM, unencrypted) for `tlsCert`: a file path, or the PEM as a Buffer. */
  tlsKey?: string | Buffer;
  /** Port of the TLS listener (on `host`). Default 12443; 0 picks a free port. */
  tlsPort?: number;
  /** Seconds a TLS handshake may take before the connection is closed. Default 10. */
  tlsHandshakeTimeout?: number;
  /** A pino logger; default silent. */
  logger?: Logger;
}

/** {@link ServerOptions} checked and with every default filled in, as `UpcaseServer.options` holds them. */
export interface NormalizedServerOptions {
  host: string | undefined;
  port: number;
  tcp: boolean;
  udp: boolean;
  maxConnections: number;
  maxConnectionsPerSource: number;
  idleTimeout: number;
  writeTimeout: number;
  udpRateLimit: number;
  udpRateBurst: number;
  udpAllowLowPorts: boolean;
  dropRate: number;
  drainTimeout: number;
  proxyProtocol: boolean;
  /** Normalized CIDR blocks (`a.b.c.d/n`, `x::/n`); empty when `proxyProtocol` is off. */
  trustedProxies: string[];
  proxyHeaderTimeout: number;
  udpTransport: UdpTransportChoice;
  tcpTransport: TcpTransportChoice;
  /** Path or PEM Buffer; undefined when TLS is off (then `tlsKey` is undefined too). */
  tlsCert: string | Buffer | undefined;
  tlsKey: string | Buffer | undefined;
  tlsPort: number;
  tlsHandshakeTimeout: number;
  logger: Logger | undefined;
}

/** `udpTransport`: `auto` (native if built), `native` (the recvmmsg/sendmmsg addon) or `dgram` (node:dgram). */
export type UdpTransportChoice = 'auto' | 'native' | 'dgram';
export const UDP_TRANSPORTS: readonly UdpTransportChoice[] = ['auto', 'native', 'dgram'];
/** `tcpTransport`: `auto` (native if built), `native` (the C transport) or `stream` (node:net). */
export type TcpTransportChoice = 'auto' | 'native' | 'stream';
export const TCP_TRANSPORTS: readonly TcpTransportChoice[] = ['auto', 'native', 'stream'];

/** Defaults for a server exposed to the internet; docs/security.md gives the reason for each. */
export const SERVER_DEFAULTS = {
  port: 12000,
  maxConnections: 1024, // connections (worst case ~330 KiB of buffers each: ~330 MiB in total)
  maxConnectionsPerSource: 256, // connections from one address (IPv6: one /64); a quarter of maxConnections
  idleTimeout: 60, // seconds
  writeTimeout: 30, // seconds
  udpRateLimit: 100, // datagrams per second per source address (burst: the same number)
  dropRate: 0, // probability
  trustedProxies: ['127.0.0.0/8', '::1/128'] as readonly string[], // CIDR blocks, when proxyProtocol is on
  proxyHeaderTimeout: 5, // seconds; the spec asks for at least 3 to cover a TCP retransmit
  drainTimeout: 8, // seconds; < docker stop's 10 s default grace
  tlsPort: 12443, // TCP port of the TLS listener
  tlsHandshakeTimeout: 10, // seconds; a handshake takes 1-2 round trips, so this is generous
} as const;

/**
 * Checks a list of CIDR blocks (array, or comma-separated string) and returns
 * it as `address/prefix` strings. Throws an InvalidArgumentError naming `name`.
 */
export function checkCidrList(name: string, value: unknown): string[] {
  const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
  if (!Array.isArray(items) || items.length === 0) {
    throw new InvalidArgumentError(name, 'a non-empty list of CIDR blocks such as 10.0.0.0/8,fd00::/8', value);
  }
  return items.map((item: unknown) => {
    const cidr = typeof item === 'string' ? parseCidr(item) : null;
    if (cidr === null) throw new InvalidArgumentError(name, 'CIDR blocks such as 10.0.0.0/8 or fd00::/8 (or single addresses)', item);
    return formatCidr(cidr);
  });
}

export function checkPort(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new InvalidArgumentError(name, 'an integer port from 0 to 65535', value);
  }
  return value;
}

export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER, unit = ''): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(name, `an integer ${range}${unit ? ` (${unit})` : ''}`, value);
  }
  return value;
}

export function checkNumber(name: string, value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(name, what, value);
  }
  return value;
}

/** A TLS certificate or key source: a non-empty file path, or PEM in a Buffer. */
function checkPemSource(name: string, value: unknown): string | Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length === 0) throw new InvalidArgumentError(name, 'a file path or a non-empty PEM Buffer', 'an empty Buffer');
    return value;
  }
  if (typeof value !== 'string' || value.length === 0) {
    // Never echo what might be key material.
    throw new InvalidArgumentError(name, 'a file path (string) or PEM (Buffer)', typeof value === 'string' ? '' : typeof value);
  }
  return value;
}

function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(name, 'a boolean', value);
  return value;
}

export function checkChoice<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    throw new InvalidArgumentError(name, `one of ${choices.map((c) => `\`${c}\``).join(', ')}`, value);
  }
  return value as T;
}

export function checkHost(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || /\s/.test(value)) {
    throw new InvalidArgumentError(name, 'a host name or IP address', value);
  }
  return value;
}

export function normalizeServerOptions(options: ServerOptions = {}): NormalizedServerOptions {
  const o = options;
  const udpRateLimit =
    o.udpRateLimit === undefined
      ? SERVER_DEFAULTS.udpRateLimit
      : checkNumber('udpRateLimit', o.udpRateLimit, 0, 1e9, 'a non-negative number of datagrams per second');
  const normalized: NormalizedServerOptions = {
    host: o.host === undefined ? undefined : checkHost('host', o.host),
    port: o.port === undefined ? SERVER_DEFAULTS.port : checkPort('port', o.port),
    tcp: o.tcp === undefined ? true : checkBoolean('tcp', o.tcp),
    udp: o.udp === undefined ? true : checkBoolean('udp', o.udp),
    maxConnections:
      o.maxConnections === undefined
        ? SERVER_DEFAULTS.maxConnections
        : checkInteger('maxConnections', o.maxConnections, 1, 10_000_000, 'connections'),
    maxConnectionsPerSource:
      o.maxConnectionsPerSource === undefined
        ? SERVER_DEFAULTS.maxConnectionsPerSource
        : checkInteger('maxConnectionsPerSource', o.maxConnectionsPerSource, 0, 10_000_000, 'connections; 0 = no limit'),
    idleTimeout:
      o.idleTimeout === undefined
        ? SERVER_DEFAULTS.idleTimeout
        : checkNumber('idleTimeout', o.idleTimeout, 0, 2_147_483, 'a non-negative number of seconds'),
    writeTimeout:
      o.writeTimeout === undefined
        ? SERVER_DEFAULTS.writeTimeout
        : checkNumber('writeTimeout', o.writeTimeout, 0, 2_147_483, 'a non-negative number of seconds'),
    udpRateLimit,
    udpRateBurst:
      o.udpRateBurst === undefined
        ? Math.max(1, udpRateLimit) // a bucket smaller than one datagram would answer nothing
        : checkNumber('udpRateBurst', o.udpRateBurst, 1, 1e9, 'a number of datagrams >= 1'),
    udpAllowLowPorts: o.udpAllowLowPorts === undefined ? false : checkBoolean('udpAllowLowPorts', o.udpAllowLowPorts),
    dropRate: o.dropRate === undefined ? SERVER_DEFAULTS.dropRate : checkNumber('dropRate', o.dropRate, 0, 1, 'a probability from 0 to 1'),
    drainTimeout:
      o.drainTimeout === undefined
        ? SERVER_DEFAULTS.drainTimeout
        : checkNumber('drainTimeout', o.drainTimeout, 0, 2_147_483, 'a non-negative number of seconds'),
    proxyProtocol: o.proxyProtocol === undefined ? false : checkBoolean('proxyProtocol', o.proxyProtocol),
    trustedProxies: [],
    proxyHeaderTimeout:
      o.proxyHeaderTimeout === undefined
        ? SERVER_DEFAULTS.proxyHeaderTimeout
        : checkNumber('proxyHeaderTimeout', o.proxyHeaderTimeout, 0.001, 3600, 'a number of seconds from 0.001 to 3600'),
    udpTransport: o.udpTransport === undefined ? 'auto' : checkChoice('udpTransport', o.udpTransport, UDP_TRANSPORTS),
    tcpTransport: o.tcpTransport === undefined ? 'auto' : checkChoice('tcpTransport', o.tcpTransport, TCP_TRANSPORTS),
    tlsCert: o.tlsCert === undefined ? undefined : checkPemSource('tlsCert', o.tlsCert),
    tlsKey: o.tlsKey === undefined ? undefined : checkPemSource('tlsKey', o.tlsKey),
    tlsPort: o.tlsPort === undefined ? SERVER_DEFAULTS.tlsPort : checkPort('tlsPort', o.tlsPort),
    tlsHandshakeTimeout:
      o.tlsHandshakeTimeout === undefined
        ? SERVER_DEFAULTS.tlsHandshakeTimeout
        : checkNumber('tlsHandshakeTimeout', o.tlsHandshakeTimeout, 0.001, 3600, 'a number of seconds from 0.001 to 3600'),
    logger: o.logger,
  };
  if ((normalized.tlsCert === undefined) !== (normalized.tlsKey === undefined)) {
    const missing = normalized.tlsCert === undefined ? 'tlsCert' : 'tlsKey';
    throw new InvalidArgumentError(missing, 'given too: TLS needs both `tlsCert` and `tlsKey`', 'nothing');
  }
  const tls = normalized.tlsCert !== undefined;
  for (const name of ['tlsPort', 'tlsHandshakeTimeout'] as const) {
    // As with trustedProxies: a TLS setting without TLS means the operator expects TLS.
    if (o[name] !== undefined && !tls) throw new InvalidArgumentError(name, 'used together with `tlsCert` and `tlsKey`', o[name]);
  }
  if (o.trustedProxies !== undefined && !normalized.proxyProtocol) {
    // Most likely the operator believes PROXY headers are being checked: say so rather than ignore it.
    throw new InvalidArgumentError('trustedProxies', 'used together with `proxyProtocol: true`', o.trustedProxies);
  }
  if (normalized.proxyProtocol) {
    normalized.trustedProxies = checkCidrList('trustedProxies', o.trustedProxies ?? SERVER_DEFAULTS.trustedProxies);
  }
  if (!normalized.tcp && !normalized.udp && !tls) {
    throw new InvalidArgumentError('tcp/udp', 'at least one transport enabled (or TLS)', 'neither');
  }
  return normalized;
}
