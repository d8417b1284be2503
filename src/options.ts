import type { Logger } from 'pino';
import { InvalidArgumentError } from './errors.js';
import { boolean, choice, cidrs, host, integer, number, pem, port, seconds } from './options/kinds.js';
import { normalizeTable, type OptionTable } from './options/table.js';

/**
 * All server options, normalized in one place from one table ({@link SERVER_OPTIONS}).
 * Defaults and units are in {@link SERVER_DEFAULTS}; docs/operations.md explains why each
 * default is what it is.
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

/** The server's options, one row each (src/options/table.ts): flags, variables, checks, defaults and docs come from here. */
export const SERVER_OPTIONS: OptionTable<Omit<ServerOptions, 'logger'>> = {
  host: {
    kind: host(),
    help: 'address to listen on; a name is resolved once',
    defaultText: '`::` (dual-stack), else `0.0.0.0`',
  },
  port: { kind: port(), short: '-p', default: SERVER_DEFAULTS.port, help: 'port for TCP and UDP; 0 picks a free one (the same for both)' },
  tcp: { kind: boolean(), default: true, help: 'do not serve TCP' },
  udp: { kind: boolean(), default: true, help: 'do not serve UDP (at least one transport, or TLS, must stay on)' },
  maxConnections: {
    kind: integer({ min: 1, max: 10_000_000, unit: 'connections' }),
    default: SERVER_DEFAULTS.maxConnections,
    help: 'open TCP connections at most; more are closed at once (lowered to fit `ulimit -n`)',
    docs: 'per worker, counted as refused ([Limits](operations.md#limits))',
  },
  maxConnectionsPerSource: {
    kind: integer({ min: 0, max: 10_000_000, unit: 'connections' }),
    default: SERVER_DEFAULTS.maxConnectionsPerSource,
    help: 'open TCP connections from one address (IPv6: one /64) at most; 0 = no limit',
    docs: 'with `--proxy-protocol`, the client address from the header; per worker ([Limits](operations.md#limits))',
  },
  idleTimeout: {
    kind: seconds({ min: 0 }),
    default: SERVER_DEFAULTS.idleTimeout,
    help: 'close a TCP connection silent this long in both directions; 0 = never',
  },
  writeTimeout: {
    kind: seconds({ min: 0 }),
    default: SERVER_DEFAULTS.writeTimeout,
    help: 'reset a client that leaves replies unread this long; 0 = never',
  },
  udpRateLimit: {
    kind: number({ min: 0, max: 1e9, unit: 'datagrams per second' }),
    default: SERVER_DEFAULTS.udpRateLimit,
    help: 'UDP datagrams per second per source address (IPv6: per /64); 0 = no limit',
    docs: 'per worker ([Limits](operations.md#limits))',
  },
  udpRateBurst: {
    kind: number({ min: 1, max: 1e9, expected: 'a number of datagrams >= 1' }),
    // A bucket smaller than one datagram would answer nothing.
    default: (o) => Math.max(1, o.udpRateLimit as number),
    defaultText: 'the rate limit, at least 1',
    help: 'datagrams a source may send at once before `--udp-rate-limit` applies',
  },
  udpAllowLowPorts: {
    kind: boolean(),
    default: false,
    help: 'reply to UDP source ports below 1024 (off by default: stops loops with echo, chargen, DNS, NTP)',
  },
  dropRate: {
    kind: number({ min: 0, max: 1, expected: 'a probability from 0 to 1', arg: '<p>' }),
    default: SERVER_DEFAULTS.dropRate,
    help: 'drop this fraction of UDP requests on purpose, to simulate loss',
  },
  drainTimeout: {
    kind: seconds({ min: 0 }),
    default: SERVER_DEFAULTS.drainTimeout,
    help: 'on SIGTERM/SIGINT, seconds open TCP connections may finish',
    docs: "8 fits inside `docker stop`'s 10 s ([Graceful drain](operations.md#graceful-drain))",
  },
  proxyProtocol: {
    kind: boolean(),
    default: false,
    help: 'expect a PROXY protocol v1/v2 header on every TCP connection (behind nginx or HAProxy)',
    docs: '[Scale-out](operations.md#scale-out)',
  },
  trustedProxies: {
    kind: cidrs(),
    // Only with proxyProtocol: set without it, the operator most likely believes headers are checked.
    requires: ['proxyProtocol'],
    default: (o) => (o.proxyProtocol === true ? [...SERVER_DEFAULTS.trustedProxies] : []),
    defaultText: SERVER_DEFAULTS.trustedProxies.join(','),
    help: 'with `--proxy-protocol`: comma-separated CIDR blocks allowed to connect',
  },
  proxyHeaderTimeout: {
    kind: seconds({ min: 0.001, max: 3600 }),
    default: SERVER_DEFAULTS.proxyHeaderTimeout,
    help: 'with `--proxy-protocol`: close a connection without a complete header after this long',
  },
  udpTransport: {
    kind: choice(UDP_TRANSPORTS),
    default: 'auto',
    help: 'UDP transport: native (batched recvmmsg/sendmmsg addon), dgram (node:dgram) or auto (native when built)',
    docs: 'both behave identically ([native transports](operations.md#native-transports))',
  },
  tcpTransport: {
    kind: choice(TCP_TRANSPORTS),
    default: 'auto',
    help: 'TCP transport: native (connections served by the C addon), stream (net.Socket) or auto (native when built)',
    docs: 'both behave identically; TLS always uses streams ([native transports](operations.md#native-transports))',
  },
  tlsCert: {
    kind: pem(),
    requires: ['tlsKey'],
    defaultText: 'no TLS',
    help: 'TLS certificate (PEM, chain allowed); with `--tls-key`, serves TCP over TLS on `--tls-port`',
    docs: '[TLS](operations.md#tls)',
  },
  tlsKey: { kind: pem(), requires: ['tlsCert'], defaultText: 'no TLS', help: 'TLS private key (PEM, unencrypted) for `--tls-cert`' },
  tlsPort: {
    kind: port(),
    // As with trustedProxies: a TLS setting without TLS means the operator expects TLS.
    requires: ['tlsCert', 'tlsKey'],
    default: SERVER_DEFAULTS.tlsPort,
    help: 'with TLS: port for TCP over TLS; 0 picks a free one',
  },
  tlsHandshakeTimeout: {
    kind: seconds({ min: 0.001, max: 3600 }),
    requires: ['tlsCert', 'tlsKey'],
    default: SERVER_DEFAULTS.tlsHandshakeTimeout,
    help: 'with TLS: close a connection whose handshake takes longer',
  },
};

/**
 * Checks a list of CIDR blocks (array, or comma-separated string) and returns
 * it as `address/prefix` strings. Throws an InvalidArgumentError naming `name`.
 */
export function checkCidrList(name: string, value: unknown): string[] {
  return cidrs().check(name, value);
}

export function checkPort(name: string, value: unknown): number {
  return port().check(name, value);
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

export function checkChoice<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  return choice(choices).check(name, value);
}

/** A host name or IP address; brackets around an IPv6 literal are dropped. */
export function checkHost(name: string, value: unknown): string {
  return host().check(name, value);
}

export function normalizeServerOptions(options: ServerOptions = {}): NormalizedServerOptions {
  const normalized = normalizeTable(SERVER_OPTIONS, options as Record<string, unknown>) as unknown as NormalizedServerOptions;
  normalized.logger = options.logger;
  if (!normalized.tcp && !normalized.udp && normalized.tlsCert === undefined) {
    throw new InvalidArgumentError('tcp/udp', 'at least one transport enabled (or TLS)', 'neither');
  }
  return normalized;
}
