import { build, initWebAssembly, type Histogram } from 'hdr-histogram-js';

/** Latency figures in microseconds. */
export interface LatencySummary {
  /** Replies recorded. */
  count: number;
  min: number;
  mean: number;
  stdev: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
}

/** One point of the percentile distribution (HdrHistogram's percentile plot). */
export interface PercentilePoint {
  /** 0–100. */
  percentile: number;
  /** Microseconds. */
  value: number;
}

// Values are nanoseconds, from 1 ns to an hour, to 3 significant digits.
const HIGHEST_NS = 3_600_000_000_000;
let wasm: Promise<boolean> | null = null;

/**
 * Loads hdr-histogram-js's WebAssembly build once. On Node 20 it records about
 * 7× faster than the pure-JS histograms; if it cannot load, the JS build is used.
 */
function wasmReady(): Promise<boolean> {
  wasm ??= initWebAssembly().then(
    () => true,
    () => false,
  );
  return wasm;
}

/** An HDR histogram of latencies recorded in nanoseconds. Call {@link destroy} when done (it frees WebAssembly memory). */
export class LatencyHistogram {
  private constructor(private readonly histogram: Histogram) {}

  static async create(): Promise<LatencyHistogram> {
    const useWebAssembly = await wasmReady();
    return new LatencyHistogram(
      build({
        bitBucketSize: 32,
        autoResize: false,
        lowestDiscernibleValue: 1,
        highestTrackableValue: HIGHEST_NS,
        numberOfSignificantValueDigits: 3,
        useWebAssembly,
      }),
    );
  }

  /** Records one latency given in milliseconds (as `performance.now()` differences are). */
  recordMs(ms: number): void {
    let ns = Math.round(ms * 1e6);
    if (ns < 1) ns = 1;
    else if (ns > HIGHEST_NS) ns = HIGHEST_NS;
    this.histogram.recordValue(ns);
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    const us = (ns: number): number => Math.round(ns) / 1000;
    if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, stdev: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0 };
    return {
      count: h.totalCount,
      min: us(h.minNonZeroValue),
      mean: us(h.mean),
      stdev: us(h.stdDeviation),
      p50: us(h.getValueAtPercentile(50)),
      p90: us(h.getValueAtPercentile(90)),
      p99: us(h.getValueAtPercentile(99)),
      p99_9: us(h.getValueAtPercentile(99.9)),
      max: us(h.maxValue),
    };
  }

  /**
   * The percentile distribution at ten points per decade of 1/(1 − p), from p0 up
   * to the last percentile the sample count resolves, then the maximum.
   */
  distribution(): PercentilePoint[] {
    const h = this.histogram;
    const points: PercentilePoint[] = [];
    if (h.totalCount === 0) return points;
    const decades = Math.max(1, Math.log10(h.totalCount));
    for (let i = 0; i <= decades * 10; i++) {
      const percentile = 100 * (1 - 10 ** (-i / 10));
      points.push({ percentile, value: h.getValueAtPercentile(percentile) / 1000 });
    }
    points.push({ percentile: 100, value: h.maxValue / 1000 });
    return points;
  }

  destroy(): void {
    this.histogram.destroy();
  }
}
