import { InvalidArgumentError } from '../errors.js';
import { SERVER_DEFAULTS } from '../options.js';
import { boolean, host, integer, type Kind, port, pem, seconds } from '../options/kinds.js';
import { normalizeTable, type OptionTable, type Table } from '../options/table.js';
import type { Tracer } from '../trace.js';

/**
 * Client options, normalized in one place from one table ({@link CLIENT_OPTIONS}).
 * Defaults and units are in {@link CLIENT_DEFAULTS}.
 */
export interface ClientOptions {
  /** Server host name or address. Default `localhost`. */
  host?: string;
  /** Server port. Default 12000, or 12443 with `tls`. */
  port?: number;
  /**
   * Seconds (fractions allowed). TCP: to connect, and the longest silence from the
   * server while a reply is owed. UDP: how long each try waits for its reply.
   * Default 10 for TCP, 1 for UDP.
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

/** The `tls` option of the TCP clients: CA, server name, and whether to skip verification. */
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

/** The clients' defaults: host, port, timeouts, retries. */
export const CLIENT_DEFAULTS = {
  host: 'localhost',
  port: 12000,
  tcpTimeout: 10, // seconds: connect, and server silence while a reply is owed
  udpTimeout: 1, // seconds per try
  retries: 2, // UDP tries after the first
} as const;

/**
 * The rows every client command shares (client, ping, bench): where the server is.
 * `host` is given the same way everywhere: `-H, --host`, `UPCASE_HOST`, default `localhost`.
 */
export const TARGET_OPTIONS = {
  host: {
    kind: host(),
    short: '-H',
    default: CLIENT_DEFAULTS.host,
    help: 'server host name or address (an IPv6 address with or without brackets)',
  },
  port: {
    kind: port(1),
    short: '-p',
    default: (o: Readonly<Record<string, unknown>>) =>
      o.tls !== undefined && o.tls !== null && o.tls !== false ? SERVER_DEFAULTS.tlsPort : CLIENT_DEFAULTS.port,
    defaultText: `${CLIENT_DEFAULTS.port}, or ${SERVER_DEFAULTS.tlsPort} with --tls`,
    help: 'server port',
  },
} as const satisfies Table;

/** The options of the `tls` object, one row each. */
export const TLS_CLIENT_OPTIONS: OptionTable<TlsClientOptions> = {
  ca: {
    kind: pem(),
    help: 'with --tls: trust the CA certificate(s) in this PEM file instead of the system store',
    defaultText: 'the system store',
  },
  servername: { kind: host('<name>'), help: 'with --tls: the name the certificate must carry (also sent as SNI)', defaultText: 'the host' },
  insecure: { kind: boolean(), default: false, help: 'with --tls: do not verify the certificate (testing only)' },
};

/** `tls`: true, false, or `{ ca, servername, insecure }`; normalized to false or the checked object. */
const tlsKind: Kind<false | NormalizedTlsClientOptions> = {
  expected: 'a boolean or { ca, servername, insecure }',
  check: (name, value) => {
    if (value === false) return false;
    if (value === true) return { ca: undefined, servername: undefined, insecure: false };
    if (typeof value !== 'object' || value === null || Buffer.isBuffer(value) || Array.isArray(value)) {
      throw new InvalidArgumentError(name, 'a boolean or { ca, servername, insecure }', value);
    }
    return normalizeTable(TLS_CLIENT_OPTIONS, value as Record<string, unknown>, {
      prefix: `${name}.`,
    }) as unknown as NormalizedTlsClientOptions;
  },
  fromText: (text) => boolean().fromText(text),
  format: (v) => (v === false ? 'off' : 'on'),
};

/**
 * The TLS rows of the client commands (client, bench): `--tls`, and the flags that
 * go into its object, each of which needs `--tls`.
 */
export const TLS_OPTIONS = {
  tls: { kind: tlsKind, default: false, help: 'TCP over TLS (1.2 or later); the server certificate is verified' },
  ca: { ...TLS_CLIENT_OPTIONS.ca, path: 'tls.ca', requires: ['tls'] },
  servername: { ...TLS_CLIENT_OPTIONS.servername, path: 'tls.servername', requires: ['tls'] },
  insecure: { ...TLS_CLIENT_OPTIONS.insecure, default: undefined, defaultText: 'off', path: 'tls.insecure', requires: ['tls'] },
} as const satisfies Table;

/** `--tcp` / `--udp` of the client commands: which functions the command calls. */
export const TRANSPORT_OPTIONS = {
  tcp: { kind: boolean(), conflicts: ['udp'], defaultText: 'on', help: 'use TCP (the default)', cli: true },
  udp: { kind: boolean(), conflicts: ['tcp', 'tls'], defaultText: 'off', help: 'use UDP', cli: true },
} as const satisfies Table;

/** The client's options, one row each. */
export const CLIENT_OPTIONS: OptionTable<Omit<ClientOptions, 'tracer'>> = {
  ...TARGET_OPTIONS,
  timeout: {
    kind: seconds({ min: 0.001 }),
    default: (o) => (o.transport === 'udp' ? CLIENT_DEFAULTS.udpTimeout : CLIENT_DEFAULTS.tcpTimeout),
    defaultText: `${CLIENT_DEFAULTS.udpTimeout} (UDP, per try), ${CLIENT_DEFAULTS.tcpTimeout} (TCP)`,
    help: 'UDP: seconds to wait for each try; TCP: to connect, and the longest server silence while a reply is owed',
  },
  retries: {
    kind: integer({ min: 0, max: 1000, unit: 'tries' }),
    default: CLIENT_DEFAULTS.retries,
    help: 'UDP: tries after the first before giving up',
  },
  tls: TLS_OPTIONS.tls,
};

export function normalizeClientOptions(options: ClientOptions, transport: 'tcp' | 'udp'): NormalizedClientOptions {
  const o = normalizeTable(CLIENT_OPTIONS, options as Record<string, unknown>, { context: { transport } });
  if (o.tls !== false && transport === 'udp') throw new InvalidArgumentError('tls', 'false over UDP (TLS runs over TCP)', options.tls);
  return {
    ...(o as unknown as NormalizedClientOptions),
    tls: o.tls === false ? null : (o.tls as NormalizedTlsClientOptions),
    tracer: options.tracer,
  };
}

/** `tls` as given (boolean or object) → checked options, or null for no TLS. */
export function normalizeTlsClientOptions(value: unknown): NormalizedTlsClientOptions | null {
  if (value === undefined) return null;
  return tlsKind.check('tls', value) || null;
}

/** A client needs a real port to talk to: 1–65535. */
export function checkPositivePort(value: unknown, name = 'port'): number {
  return port(1).check(name, value);
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
  /** Seconds to wait for each reply, as ping(8)'s `-W`. Default 1. */
  timeout?: number;
  /** Bytes of payload per ping (the textbook lab's `Ping <seq> <time>`, padded). Default 56. */
  size?: number;
  /** Seconds after which the run stops, whatever the count, as ping(8)'s `-w`. Default: none. */
  deadline?: number;
}

export interface NormalizedPingOptions {
  host: string;
  port: number;
  count: number;
  interval: number;
  timeout: number;
  size: number;
  /** Undefined: no deadline. */
  deadline: number | undefined;
}

/** The pinger's defaults: count, interval, timeout, size. */
export const PING_DEFAULTS = {
  count: 0, // pings; 0 = until stopped
  interval: 1, // seconds
  timeout: 1, // seconds
  size: 56, // bytes, as ping(8)
  minSize: 32, // bytes: room for "Ping <10-digit seq> <13-digit ms time>"
  minInterval: 0.001, // seconds
} as const;

/** The pinger's options, one row each; the flags are ping(8)'s. */
export const PING_OPTIONS: OptionTable<PingOptions> = {
  host: TARGET_OPTIONS.host,
  port: { ...TARGET_OPTIONS.port, default: CLIENT_DEFAULTS.port, defaultText: undefined },
  count: {
    kind: integer({ min: 0, unit: 'pings' }),
    short: '-c',
    default: PING_DEFAULTS.count,
    defaultText: '0 (until Ctrl-C)',
    help: 'stop after this many pings; 0 = until Ctrl-C',
  },
  interval: {
    kind: seconds({ min: PING_DEFAULTS.minInterval }),
    short: '-i',
    default: PING_DEFAULTS.interval,
    help: 'seconds between pings',
  },
  timeout: {
    kind: seconds({ min: 0.001 }),
    short: '-W',
    default: PING_DEFAULTS.timeout,
    help: 'seconds to wait for each reply',
  },
  size: {
    // 65507: the largest UDP payload over IPv4 (src/udp/handler.ts).
    kind: integer({ min: PING_DEFAULTS.minSize, max: 65_507, unit: 'bytes', arg: '<bytes>' }),
    short: '-s',
    default: PING_DEFAULTS.size,
    help: 'payload bytes per ping',
  },
  deadline: {
    kind: seconds({ min: 0.001 }),
    short: '-w',
    defaultText: 'none',
    help: 'stop after this many seconds, whatever the count (exit 0 if any reply came, else 1)',
  },
};

export function normalizePingOptions(options: PingOptions): NormalizedPingOptions {
  return normalizeTable(PING_OPTIONS, options as Record<string, unknown>) as unknown as NormalizedPingOptions;
}
