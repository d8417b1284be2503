import { availableParallelism } from 'node:os';
import { normalizeTlsClientOptions, type NormalizedTlsClientOptions, type TlsClientOptions } from '../client/options.js';
import { InvalidArgumentError } from '../errors.js';
import { checkHost, checkInteger, checkNumber, checkPort, SERVER_DEFAULTS } from '../options.js';
import { SEQ_DIGITS } from './payload.js';

export type BenchTransport = 'tcp' | 'udp';
export type PayloadKind = 'ascii' | 'utf8';

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
  /** Server address. Default `127.0.0.1`. */
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
  /** Seconds a request may wait for its reply before it counts as a timeout error. Default 1. */
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
  signal: AbortSignal | undefined;
}

export const BENCH_DEFAULTS = {
  transport: 'tcp',
  host: '127.0.0.1',
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
  timeout: 1, // seconds
  interval: 1, // seconds between progress samples
} as const;

/** Largest request: 64 MiB over TCP; over UDP, the largest IPv4 payload. */
export const MAX_TCP_REQUEST = 64 * 1024 * 1024;
export const MAX_UDP_REQUEST = 65_507;
export const MIN_UDP_REQUEST = SEQ_DIGITS + 1;

export function normalizeBenchOptions(options: BenchOptions = {}): NormalizedBenchOptions {
  const o = options;
  const transport = o.transport ?? BENCH_DEFAULTS.transport;
  if (transport !== 'tcp' && transport !== 'udp') throw new InvalidArgumentError('transport', '`tcp` or `udp`', transport);
  const udp = transport === 'udp';
  const payload = o.payload ?? BENCH_DEFAULTS.payload;
  if (payload !== 'ascii' && payload !== 'utf8') throw new InvalidArgumentError('payload', '`ascii` or `utf8`', payload);
  const size =
    o.size === undefined
      ? BENCH_DEFAULTS.size
      : udp
        ? checkInteger('size', o.size, MIN_UDP_REQUEST, MAX_UDP_REQUEST, 'bytes per datagram')
        : checkInteger('size', o.size, 1, MAX_TCP_REQUEST, 'bytes');
  const tls = normalizeTlsClientOptions(o.tls);
  if (tls !== null && udp) throw new InvalidArgumentError('tls', 'false over UDP (TLS runs over TCP)', o.tls);
  const onProgress = o.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new InvalidArgumentError('onProgress', 'a function', onProgress);
  return {
    transport,
    host: o.host === undefined ? BENCH_DEFAULTS.host : checkHost('host', o.host),
    port: o.port === undefined ? (tls === null ? BENCH_DEFAULTS.port : SERVER_DEFAULTS.tlsPort) : checkPort('port', o.port),
    tls,
    connections:
      o.connections === undefined
        ? udp
          ? BENCH_DEFAULTS.udpConnections
          : BENCH_DEFAULTS.tcpConnections
        : checkInteger('connections', o.connections, 1, 100_000, 'connections'),
    duration:
      o.duration === undefined
        ? BENCH_DEFAULTS.duration
        : checkNumber('duration', o.duration, 0.01, 86_400, 'a number of seconds from 0.01 to 86400'),
    size,
    pipeline:
      o.pipeline === undefined
        ? udp
          ? BENCH_DEFAULTS.udpPipeline
          : BENCH_DEFAULTS.tcpPipeline
        : checkInteger('pipeline', o.pipeline, 1, 65_536, 'requests in flight'),
    rate: o.rate === undefined ? BENCH_DEFAULTS.rate : checkNumber('rate', o.rate, 0, 1e8, 'a non-negative number of requests per second'),
    warmup: o.warmup === undefined ? BENCH_DEFAULTS.warmup : checkNumber('warmup', o.warmup, 0, 3600, 'a number of seconds from 0 to 3600'),
    payload,
    timeout:
      o.timeout === undefined
        ? BENCH_DEFAULTS.timeout
        : checkNumber('timeout', o.timeout, 0.001, 3600, 'a number of seconds from 0.001 to 3600'),
    onProgress,
    interval:
      o.interval === undefined
        ? BENCH_DEFAULTS.interval
        : checkNumber('interval', o.interval, 0.1, 3600, 'a number of seconds from 0.1 to 3600'),
    threads: o.threads === undefined ? availableParallelism() : checkInteger('threads', o.threads, 1, 256, 'threads'),
    signal: o.signal,
  };
}
