import type { LatencyHistogram } from './histogram.js';

/**
 * The running counters of one bench run, shared by its connections. Counters
 * only grow; the runner snapshots them at the start and end of the measured
 * window. Plain numbers, so the hot path does integer adds and nothing else.
 */
export class Tally {
  /** Requests whose reply arrived and matched the expected uppercase. */
  ok = 0;
  /** Requests whose reply arrived and differed from the expected uppercase. */
  mismatch = 0;
  /** Requests with no reply within the timeout (lost datagrams, stuck connections). */
  timeout = 0;
  /** Requests in flight on a connection the server closed or reset. */
  closed = 0;
  /** Reply bytes or datagrams that answer no request in flight (extra bytes, unparsable or duplicate datagrams). */
  unexpected = 0;
  /** Socket errors (connection reset, ICMP port unreachable, …). */
  socket = 0;
  /** UDP replies that came after their request had timed out (counted as timeouts already; not an error). */
  late = 0;
  /** Requests sent. */
  sent = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** Latencies are recorded while the load runs (the runner keeps those of the measured window). */
  recording = false;

  constructor(readonly histogram: LatencyHistogram) {}

  get errors(): number {
    return this.mismatch + this.timeout + this.closed + this.unexpected + this.socket;
  }
}

export interface TallySnapshot {
  ok: number;
  sent: number;
  bytesSent: number;
  bytesReceived: number;
  errors: number;
}

export function snapshot(t: Tally): TallySnapshot {
  return { ok: t.ok, sent: t.sent, bytesSent: t.bytesSent, bytesReceived: t.bytesReceived, errors: t.errors };
}

/**
 * A load driver: the TCP connections or the UDP sockets of a run.
 * Times are `performance.now()` milliseconds.
 */
export interface LoadDriver {
  /** Opens the connections or sockets; rejects with a NetworkError if it cannot. */
  open(): Promise<void>;
  /** Starts sending: closed loop fills the pipeline; open loop schedules from `t0`. */
  start(t0: number): void;
  /** Open loop only: sends every request whose intended time has come. */
  tick(now: number): void;
  /** Counts requests waiting past the timeout. */
  scan(now: number): void;
  /** No new requests from now on. */
  stopSending(): void;
  /** Requests sent and not yet answered or timed out. */
  inFlight(): number;
  /** Connections still usable. */
  alive(): number;
  /** Counts everything still in flight as timed out, then closes. */
  close(): Promise<void>;
  /** A driver that runs off the event loop (the native engine): brings the tally and its histogram up to date. */
  sync?(): void;
  /** A driver with a thread of its own: the CPU seconds that thread had used at the last `sync()`. */
  cpuSeconds?(): number;
}
