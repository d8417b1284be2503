import type { EncodedHistogram, LatencySummary, PercentilePoint } from './histogram.js';
import type { EngineChoice } from './engine.js';
import type { BenchTransport, PayloadKind } from './options.js';

/** One sample of the measured window, per progress interval (default 1 s). */
export interface TimelineSample {
  /** Seconds since the start of the measured window, at the end of the sample. */
  t: number;
  requestsPerSec: number;
  /** Request bytes answered correctly, in MB (10^6 bytes) per second. */
  mbPerSec: number;
  /** Errors counted during the sample. */
  errors: number;
  /** Latency percentiles over the sample, µs; null when no reply came in it. */
  p50: number | null;
  p99: number | null;
}

/** The result of {@link runBench}; `--json` prints it as is. */
export interface BenchResult {
  transport: BenchTransport;
  /** The engine that ran the load (`native` or `js`) and why; a merge of runs on different engines names both. */
  engine: EngineChoice | { name: 'mixed'; reason: string };
  /** True when the TCP connections spoke TLS. */
  tls: boolean;
  host: string;
  port: number;
  /** `closed-loop`, or `fixed-rate` with `--rate`. */
  mode: 'closed-loop' | 'fixed-rate';
  connections: number;
  pipeline: number;
  /** Request size in bytes (over UDP, the sequence number included). */
  size: number;
  payload: PayloadKind;
  /** Target requests per second (fixed-rate), or null. */
  rate: number | null;
  /** Seconds: warmup, timeout as configured; duration as measured. */
  warmup: number;
  timeout: number;
  duration: number;
  /** True when the run ended before its duration (aborted, or every connection lost). */
  endedEarly: boolean;
  /**
   * The measured window in wall-clock time (ms since the Unix epoch), so runs
   * made on several machines can be merged over the time they share.
   */
  window: { start: number; end: number };
  throughput: {
    /** Requests answered correctly per second in the measured window. */
    requestsPerSec: number;
    /** Request bytes answered correctly, MB (10^6 bytes) per second. */
    mbPerSec: number;
    /** Bytes written and read per second, on the wire as the sockets saw them. */
    sentBytesPerSec: number;
    receivedBytesPerSec: number;
  };
  /**
   * Microseconds, from the send (closed loop) or the intended send time (fixed
   * rate) to the last reply byte. All null (but `count`) when no reply came.
   */
  latency: LatencySummary & { unit: 'us' };
  /** The measured window's latencies as an encoded HDR histogram, for `upcase bench merge`. */
  histogram: EncodedHistogram;
  requests: {
    /** Requests sent over the whole run (warmup and drain included). */
    sent: number;
    /** Requests answered correctly over the whole run. */
    ok: number;
    /** Requests answered correctly inside the measured window. */
    measured: number;
  };
  /** Over the whole run. `total` is the sum of all but `late`. */
  errors: {
    total: number;
    mismatch: number;
    timeout: number;
    closed: number;
    unexpected: number;
    socket: number;
    /** UDP replies that came after their request timed out (already counted as timeouts). */
    late: number;
  };
  /** The bench process's own CPU use during the measured window. */
  cpu: {
    userSec: number;
    systemSec: number;
    /** (user + system) / wall time × 100, all threads of the process together. */
    percentOfOneCore: number;
    /**
     * Per load thread, the share of the window it was busy (%): its event loop's busy
     * time on the JavaScript engine, its CPU time on the native one. Near 100 means that
     * thread is at its own limit, and the client may be the bottleneck.
     */
    loadThreads: number[];
  };
  timeline: TimelineSample[];
  /** The latency percentile distribution (µs), for plotting; empty when no reply came. */
  percentiles: PercentilePoint[];
}
