import { availableParallelism } from 'node:os';
import { type NormalizedTlsClientOptions, TARGET_OPTIONS, TLS_OPTIONS, type TlsClientOptions } from '../client/options.js';
import { InvalidArgumentError } from '../errors.js';
import { bytes, choice, integer, perSecond, seconds } from '../options/kinds.js';
import { normalizeTable, type OptionTable } from '../options/table.js';
import { nativeFits } from './addon.js';
import { type PayloadKind, SEQ_DIGITS } from './payload.js';

/** The transport a load test runs over. */
export type BenchTransport = 'tcp' | 'udp';
/** Which engine runs the load: the native one where it is built and runs the workload (`auto`), or the one named. */
export type BenchEngine = 'auto' | 'native' | 'js';
export type { PayloadKind };

/** A progress sample, once per `interval` while the run lasts (iperf3's interval reports). */
export interface BenchProgress {
  /** Seconds since the start of the run, warmup included. */
  elapsed: number;
  /** True for an interval of the warmup (not part of the result). */
  warmingUp: boolean;
  /**
   * The interval, in seconds: since the start of the measured window, or of the
   * run for a warmup interval. The last interval of each phase may be shorter.
   */
  start: number;
  end: number;
  /** Requests answered correctly in the interval. */
  requests: number;
  /** Requests answered correctly per second over the interval. */
  rate: number;
  /** Errors counted in the interval. */
  intervalErrors: number;
  /** Errors so far (warmup included). */
  errors: number;
  /** Latency percentiles over the interval, µs; null when no reply came in it. */
  p50: number | null;
  p99: number | null;
}

/**
 * Options of {@link runBench}. Defaults are in {@link BENCH_DEFAULTS}; with them,
 * `tcp` is the request/response workload of docs/benchmarks.md (64 connections ×
 * 1 in flight × 64 B) and `udp` is 1 socket × 64 in flight × 64 B.
 */
export interface BenchOptions {
  /** Default `tcp`. */
  transport?: BenchTransport;
  /** Server host name or address. Default `localhost`. */
  host?: string;
  /** Server port. Default 12000, or 12443 with `tls`. */
  port?: number;
  /**
   * TCP only: each connection speaks TLS and verifies the server's certificate
   * (`true`: against the system's CAs; or `{ ca, servername, insecure }` as for
   * the client). Connecting, handshakes included, happens before the clock starts.
   * Default false.
   */
  tls?: boolean | TlsClientOptions;
  /** TCP connections, or UDP sockets. Default 64 for TCP, 1 for UDP. */
  connections?: number;
  /** Seconds to measure, after the warmup. Default 10. */
  duration?: number;
  /** Request size in bytes. Default 64. UDP needs at least 11 (10 are the sequence number). */
  size?: number;
  /**
   * Requests in flight per connection (per socket for UDP). Default 1 for TCP, 64 for UDP.
   * With `rate`, it caps the requests in flight per TCP connection (UDP is not capped).
   */
  pipeline?: number;
  /** Total requests per second, fixed (open loop); 0 = closed loop, as fast as replies come. Default 0. */
  rate?: number;
  /** Seconds of load before recording starts. Default 1. */
  warmup?: number;
  /** `ascii`, or `utf8`: about 30% of the characters are non-ASCII (2–4 bytes, some change length). Default `ascii`. */
  payload?: PayloadKind;
  /** Seconds a request may wait for its reply before it counts as a timeout error. Default 1 for UDP, 10 for TCP. */
  timeout?: number;
  /** Called once per `interval` with the figures of that interval. */
  onProgress?: (progress: BenchProgress) => void;
  /** Seconds between progress samples (and timeline samples). Default 1. */
  interval?: number;
  /**
   * Load threads: the connections are spread over this many worker threads (at
   * most one per connection), each with its own event loop, verifying and
   * recording as one; their histograms are merged exactly. Default: the CPUs
   * (`os.availableParallelism()`).
   */
  threads?: number;
  /**
   * `native`: the C engine (native/bench_engine.c) runs the closed-loop TCP and UDP
   * loops on a thread of its own, with the same verification and histograms; `js`:
   * the connections run on JavaScript event loops; `auto`: native where it is built
   * and runs the workload (closed loop, no TLS), else JavaScript. Default `auto`.
   */
  engine?: BenchEngine;
  /** Aborting ends the run early; the result covers what was measured. */
  signal?: AbortSignal;
}

export interface NormalizedBenchOptions {
  transport: BenchTransport;
  host: string;
  port: number;
  /** Null without TLS. */
  tls: NormalizedTlsClientOptions | null;
  connections: number;
  duration: number;
  size: number;
  pipeline: number;
  rate: number;
  warmup: number;
  payload: PayloadKind;
  timeout: number;
  onProgress: ((progress: BenchProgress) => void) | undefined;
  interval: number;
  threads: number;
  engine: BenchEngine;
  signal: AbortSignal | undefined;
}

/** The load generator's defaults (seconds, bytes, requests per second). */
export const BENCH_DEFAULTS = {
  transport: 'tcp',
  host: 'localhost',
  port: 12000,
  tcpConnections: 64, // connections
  udpConnections: 1, // sockets
  duration: 10, // seconds
  size: 64, // bytes
  tcpPipeline: 1, // requests in flight per connection
  udpPipeline: 64, // datagrams in flight per socket
  rate: 0, // requests per second; 0 = closed loop
  warmup: 1, // seconds
  payload: 'ascii',
  udpTimeout: 1, // seconds: a lost datagram
  tcpTimeout: 10, // seconds: a stuck TCP connection, not one slow reply
  interval: 1, // seconds between progress samples
  engine: 'auto',
} as const;

/** Largest request: 64 MiB over TCP; over UDP, the largest IPv4 payload. */
export const MAX_TCP_REQUEST = 64 * 1024 * 1024;
export const MAX_UDP_REQUEST = 65_507;
export const MIN_UDP_REQUEST = SEQ_DIGITS + 1;

const byTransport =
  <T>(udp: T, tcp: T) =>
  (o: Readonly<Record<string, unknown>>): T =>
    o.transport === 'udp' ? udp : tcp;

/** The load generator's options, one row each. */
export const BENCH_OPTIONS: OptionTable<Omit<BenchOptions, 'onProgress' | 'signal'>> = {
  transport: { kind: choice(['tcp', 'udp'] as const), default: BENCH_DEFAULTS.transport, help: 'tcp or udp' },
  ...TARGET_OPTIONS,
  tls: {
    ...TLS_OPTIONS.tls,
    help: 'TCP over TLS: every connection verifies the server certificate (handshakes happen before the clock starts)',
  },
  connections: {
    kind: integer({ min: 1, max: 100_000, unit: 'connections' }),
    short: '-c',
    default: byTransport<number>(BENCH_DEFAULTS.udpConnections, BENCH_DEFAULTS.tcpConnections),
    defaultText: `${BENCH_DEFAULTS.tcpConnections} (TCP), ${BENCH_DEFAULTS.udpConnections} (UDP)`,
    help: 'TCP connections, or UDP sockets',
  },
  duration: {
    kind: seconds({ min: 0.01, max: 86_400 }),
    short: '-d',
    default: BENCH_DEFAULTS.duration,
    help: 'time to measure, after the warmup',
  },
  size: {
    kind: bytes({ min: 1, max: MAX_TCP_REQUEST }),
    short: '-s',
    default: BENCH_DEFAULTS.size,
    help: `request size in bytes (binary multiples: 1k, 1M); UDP: ${MIN_UDP_REQUEST} to ${MAX_UDP_REQUEST}, the first ${SEQ_DIGITS} being the sequence number`,
  },
  pipeline: {
    kind: integer({ min: 1, max: 65_536, unit: 'requests in flight' }),
    default: byTransport<number>(BENCH_DEFAULTS.udpPipeline, BENCH_DEFAULTS.tcpPipeline),
    defaultText: `${BENCH_DEFAULTS.tcpPipeline} (TCP), ${BENCH_DEFAULTS.udpPipeline} (UDP)`,
    help: 'requests in flight per connection or socket; with --rate, the cap per TCP connection',
  },
  rate: {
    kind: perSecond({ min: 0, max: 1e8, unit: 'requests per second', arg: '<r>' }),
    default: BENCH_DEFAULTS.rate,
    help: 'fixed total rate in requests/s (5000, 10k; open loop, latency from each intended send time); 0 = closed loop',
  },
  warmup: {
    kind: seconds({ min: 0, max: 3600 }),
    default: BENCH_DEFAULTS.warmup,
    help: 'load before recording starts',
  },
  payload: {
    kind: choice(['ascii', 'utf8'] as const),
    default: BENCH_DEFAULTS.payload,
    help: 'request text: ascii, or utf8 (about 30% non-ASCII characters, some change length)',
  },
  timeout: {
    kind: seconds({ min: 0.001, max: 3600 }),
    default: byTransport<number>(BENCH_DEFAULTS.udpTimeout, BENCH_DEFAULTS.tcpTimeout),
    defaultText: `${BENCH_DEFAULTS.udpTimeout} (UDP), ${BENCH_DEFAULTS.tcpTimeout} (TCP)`,
    help: 'a request with no reply this long is a timeout error',
  },
  interval: {
    kind: seconds({ min: 0.1, max: 3600 }),
    default: BENCH_DEFAULTS.interval,
    defaultText: 'off on the command line (the library: 1)',
    help: 'print a progress line every this many seconds, as iperf3 does (to stderr with --json)',
  },
  engine: {
    kind: choice(['auto', 'native', 'js'] as const),
    default: BENCH_DEFAULTS.engine,
    help: 'native: a C engine thread runs the closed-loop TCP/UDP loops (where built); js: JavaScript event loops; auto: native where built and the workload allows (no --rate, no TLS)',
  },
  threads: {
    kind: integer({ min: 1, max: 256, unit: 'threads' }),
    // One native engine thread drives as many connections as the C load generator does; JavaScript needs every CPU.
    default: (o) => (nativeFits({ engine: o.engine, rate: o.rate as number, tls: o.tls }) ? 1 : availableParallelism()),
    defaultText: '1 on the native engine; on the JavaScript engine the CPUs, at most one per connection',
    help: 'load threads: the connections are spread over this many threads (worker threads, each with its own event loop or native engine thread), verified and recorded as one',
  },
};

export function normalizeBenchOptions(options: BenchOptions = {}): NormalizedBenchOptions {
  const o = options;
  const transport = BENCH_OPTIONS.transport.kind.check('transport', o.transport ?? BENCH_DEFAULTS.transport);
  const normalized = normalizeTable(BENCH_OPTIONS, o as Record<string, unknown>, { context: { transport } });
  const udp = transport === 'udp';
  if (udp && normalized.size !== undefined && o.size !== undefined) {
    integer({ min: MIN_UDP_REQUEST, max: MAX_UDP_REQUEST, unit: 'bytes per datagram' }).check('size', o.size);
  }
  if (normalized.tls !== false && udp) throw new InvalidArgumentError('tls', 'false over UDP (TLS runs over TCP)', o.tls);
  const onProgress = o.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new InvalidArgumentError('onProgress', 'a function', onProgress);
  return {
    ...(normalized as unknown as NormalizedBenchOptions),
    tls: normalized.tls === false ? null : (normalized.tls as NormalizedTlsClientOptions),
    onProgress,
    signal: o.signal,
  };
}
