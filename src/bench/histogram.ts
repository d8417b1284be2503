import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, initWebAssembly, type Histogram } from 'hdr-histogram-js';

/**
 * Latency figures in microseconds. With no replies recorded, every figure but
 * `count` is null: there is no latency to report.
 */
export interface LatencySummary {
  /** Replies recorded. */
  count: number;
  /** The exact smallest and largest latencies recorded. */
  min: number | null;
  mean: number | null;
  stdev: number | null;
  /**
   * Percentiles: the highest value equivalent (to 3 significant digits) to the
   * recorded value at that rank, clamped to [min, max], so never above `max`.
   */
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p99_9: number | null;
  max: number | null;
}

/** One point of the percentile distribution (HdrHistogram's percentile plot). */
export interface PercentilePoint {
  /** 0–100. */
  percentile: number;
  /** Microseconds. */
  value: number;
}

/** How a run's histogram travels in `--json`, so runs can be merged exactly ({@link LatencyHistogram.decode}). */
export interface EncodedHistogram {
  /** Values are nanoseconds. */
  unit: 'ns';
  /** Significant decimal digits the histogram keeps. */
  significantDigits: number;
  /** The exact smallest and largest values recorded (ns), which the encoding rounds to its buckets; null when empty. */
  min: number | null;
  max: number | null;
  /** HdrHistogram's compressed V2 encoding, in base64, as hdr-histogram-js's `encodeIntoCompressedBase64` writes it. */
  encoded: string;
}

// Values are nanoseconds, from 1 ns to an hour, to 3 significant digits.
const HIGHEST_NS = 3_600_000_000_000;
const SIGNIFICANT_DIGITS = 3;
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

function fresh(useWebAssembly: boolean): Histogram {
  return build({
    bitBucketSize: 32,
    autoResize: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_NS,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    useWebAssembly,
  });
}

const us = (ns: number): number => Math.round(ns) / 1000;

/** An HDR histogram of latencies recorded in nanoseconds. Call {@link destroy} when done (it frees WebAssembly memory). */
export class LatencyHistogram {
  /**
   * Exact bounds (ns) when they differ from the histogram's own: a decoded
   * histogram only knows its extreme buckets, so the exact values travel beside it.
   */
  private bounds: { min: number; max: number } | null = null;

  private constructor(private readonly histogram: Histogram) {}

  static async create(): Promise<LatencyHistogram> {
    return new LatencyHistogram(fresh(await wasmReady()));
  }

  /** A histogram from its `--json` form. Throws on a malformed encoding. */
  static async decode(e: EncodedHistogram): Promise<LatencyHistogram> {
    const useWebAssembly = await wasmReady();
    const decoded = decodeFromCompressedBase64(e.encoded, 32, useWebAssembly);
    // Copy into a histogram of the usual shape, so merged histograms all have the same buckets.
    const h = new LatencyHistogram(fresh(useWebAssembly));
    h.histogram.add(decoded);
    decoded.destroy();
    if (h.count > 0 && e.min !== null && e.max !== null) h.bounds = { min: e.min, max: e.max };
    return h;
  }

  /** Records one latency given in milliseconds (as `performance.now()` differences are). */
  recordMs(ms: number): void {
    let ns = Math.round(ms * 1e6);
    if (ns < 1) ns = 1;
    else if (ns > HIGHEST_NS) ns = HIGHEST_NS;
    this.histogram.recordValue(ns);
  }

  /**
   * Adds latencies given as bucket counts (the native engine's, native/bench_engine.c):
   * `counts[i]` values in the bucket that starts at `values[i]` ns, for i < n, whose
   * exact smallest and largest were `minNs` and `maxNs`. The buckets are this
   * histogram's own, so the result is that of recording each latency here.
   */
  recordCounts(values: Float64Array, counts: Float64Array, n: number, minNs: number, maxNs: number): void {
    if (n === 0) return;
    const bounds = this.count === 0 ? { min: minNs, max: maxNs } : { min: Math.min(this.min, minNs), max: Math.max(this.max, maxNs) };
    for (let i = 0; i < n; i++) this.histogram.recordValueWithCount(values[i]!, counts[i]!);
    this.bounds = bounds;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  /** The exact smallest value recorded, ns (0 when empty). */
  get min(): number {
    if (this.count === 0) return 0;
    return this.bounds?.min ?? this.histogram.minNonZeroValue;
  }

  /** The exact largest value recorded, ns (0 when empty). */
  get max(): number {
    if (this.count === 0) return 0;
    return this.bounds?.max ?? this.histogram.maxValue;
  }

  /** Adds every value of `other` (exactly: same buckets), keeping the exact bounds. */
  add(other: LatencyHistogram): void {
    if (other.count === 0) return;
    const bounds =
      this.count === 0 ? { min: other.min, max: other.max } : { min: Math.min(this.min, other.min), max: Math.max(this.max, other.max) };
    this.histogram.add(other.histogram);
    this.bounds = bounds;
  }

  reset(): void {
    this.histogram.reset();
    this.bounds = null;
  }

  /** The value (ns) at `percentile`, to the histogram's precision, within [min, max]. */
  valueAt(percentile: number): number {
    const v = this.histogram.getValueAtPercentile(percentile);
    // HdrHistogram answers with the highest value of the bucket, which can exceed the largest value recorded.
    return Math.min(this.max, Math.max(this.min, v));
  }

  summary(): LatencySummary {
    const h = this.histogram;
    if (h.totalCount === 0)
      return { count: 0, min: null, mean: null, stdev: null, p50: null, p90: null, p99: null, p99_9: null, max: null };
    return {
      count: h.totalCount,
      min: us(this.min),
      mean: us(h.mean),
      stdev: us(h.stdDeviation),
      p50: us(this.valueAt(50)),
      p90: us(this.valueAt(90)),
      p99: us(this.valueAt(99)),
      p99_9: us(this.valueAt(99.9)),
      max: us(this.max),
    };
  }

  encode(): EncodedHistogram {
    const empty = this.count === 0;
    return {
      unit: 'ns',
      significantDigits: SIGNIFICANT_DIGITS,
      min: empty ? null : this.min,
      max: empty ? null : this.max,
      encoded: encodeIntoCompressedBase64(this.histogram),
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
      points.push({ percentile, value: this.valueAt(percentile) / 1000 });
    }
    points.push({ percentile: 100, value: this.max / 1000 });
    return points;
  }

  destroy(): void {
    this.histogram.destroy();
  }
}
