import { InvalidArgumentError, UpcaseError } from '../errors.js';
import { type EncodedHistogram, LatencyHistogram } from './histogram.js';
import type { BenchResult } from './result.js';

/**
 * Merging the results of runs made at the same time (from several machines or
 * processes) into one: counts add up, latencies are merged exactly from the
 * runs' HDR histograms, rates add up. A run for another workload is refused; a
 * run that was not measured at the same time as the others is flagged, or
 * refused with `strict`.
 */

export interface MergeOptions {
  /** Refuse (throw) a run whose window does not overlap the others', instead of flagging it. Default false. */
  strict?: boolean;
}

/** Settings that make two runs the same workload: a merge refuses runs that differ in any of them. */
export const WORKLOAD_FIELDS = ['transport', 'tls', 'host', 'port', 'mode', 'size', 'payload', 'pipeline', 'timeout'] as const;

/** Share of its own window a run must share with the others' (median) window not to be flagged. */
export const MIN_OVERLAP = 0.5;

/** One run of a merge: where it came from, its window, and how much of it overlaps the others'. */
export interface MergedRun {
  /** The run's index in the input. */
  index: number;
  window: { start: number; end: number };
  requestsPerSec: number;
  /** Share (0–1) of the run's window inside the reference window (the median of the runs' starts and ends). */
  overlap: number;
  /** True when `overlap` < {@link MIN_OVERLAP}: the run was not measured at the same time as the others. */
  flagged: boolean;
}

/** A {@link BenchResult} of the whole (so merges can be merged again), plus how each run fits. */
export interface MergedResult extends BenchResult {
  merged: {
    runs: MergedRun[];
    /** Time every run was measuring (ms since the epoch), or null when they share none. */
    common: { start: number; end: number } | null;
    /** Indexes of the flagged runs. */
    flagged: number[];
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function describeWorkload(r: BenchResult): string {
  return WORKLOAD_FIELDS.map((k) => `${k} ${JSON.stringify(r[k])}`).join(', ');
}

/** Checks that `value` looks like a `--json` result with a histogram; the error names the run. */
function checkResult(value: unknown, index: number): BenchResult {
  const r = value as Partial<BenchResult> | null;
  const h = r?.histogram as Partial<EncodedHistogram> | undefined;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.requests?.measured !== 'number' ||
    typeof r.window?.start !== 'number' ||
    typeof h?.encoded !== 'string' ||
    h.unit !== 'ns'
  ) {
    throw new InvalidArgumentError(
      `results[${index}]`,
      'the JSON result of `upcase bench --json` (with `window` and `histogram`)',
      typeof value === 'object' ? '(another object)' : value,
    );
  }
  return r as BenchResult;
}

/**
 * Merges bench results (as `upcase bench --json` prints them). Rejects with an
 * `InvalidArgumentError` for fewer than one result, a result without a
 * histogram, or runs of different workloads; with `strict`, also for a run not
 * measured at the same time as the others.
 */
export async function mergeResults(inputs: readonly unknown[], options: MergeOptions = {}): Promise<MergedResult> {
  if (inputs.length === 0) throw new InvalidArgumentError('results', 'at least one bench result', 0);
  const runs = inputs.map(checkResult);
  const first = runs[0]!;
  for (const [i, r] of runs.entries()) {
    const differs = WORKLOAD_FIELDS.filter((k) => r[k] !== first[k]);
    if (differs.length > 0) {
      throw new UpcaseError(
        'UPCASE_ERR_INVALID_ARG',
        `run ${i + 1} is another workload than run 1 (${differs.join(', ')} differ): ${describeWorkload(r)} vs ${describeWorkload(first)}`,
      );
    }
  }

  // The reference window is the median start to the median end: runs measured at the same
  // time share most of it, and one run at another time cannot move it.
  const ref = { start: median(runs.map((r) => r.window.start)), end: median(runs.map((r) => r.window.end)) };
  const merged: MergedRun[] = runs.map((r, index) => {
    const length = r.window.end - r.window.start;
    const shared = Math.max(0, Math.min(r.window.end, ref.end) - Math.max(r.window.start, ref.start));
    const overlap = length > 0 ? shared / length : 0;
    return {
      index,
      window: r.window,
      requestsPerSec: r.throughput.requestsPerSec,
      overlap: round(overlap, 3),
      flagged: overlap < MIN_OVERLAP,
    };
  });
  const flagged = merged.filter((m) => m.flagged).map((m) => m.index);
  if (options.strict === true && flagged.length > 0) {
    throw new UpcaseError(
      'UPCASE_ERR_INVALID_ARG',
      `run ${flagged.map((i) => i + 1).join(', ')} was not measured at the same time as the others (less than ${MIN_OVERLAP * 100}% of its window overlaps theirs)`,
    );
  }
  const commonStart = Math.max(...runs.map((r) => r.window.start));
  const commonEnd = Math.min(...runs.map((r) => r.window.end));
  const common = commonEnd > commonStart ? { start: commonStart, end: commonEnd } : null;

  const histogram = await LatencyHistogram.create();
  try {
    for (const r of runs) {
      const h = await LatencyHistogram.decode(r.histogram).catch((err: unknown) => {
        throw new UpcaseError('UPCASE_ERR_INVALID_ARG', `run ${runs.indexOf(r) + 1}: the histogram cannot be decoded`, { cause: err });
      });
      if (h.count !== r.latency.count) {
        h.destroy();
        throw new UpcaseError(
          'UPCASE_ERR_INVALID_ARG',
          `run ${runs.indexOf(r) + 1}: its histogram holds ${h.count} values, its latency.count says ${r.latency.count}`,
        );
      }
      histogram.add(h);
      h.destroy();
    }
    const sum = (f: (r: BenchResult) => number): number => runs.reduce((n, r) => n + f(r), 0);
    const seconds = common === null ? 0 : (common.end - common.start) / 1000;
    const engines = [...new Set(runs.map((r) => r.engine?.name ?? 'unknown'))];
    return {
      transport: first.transport,
      engine:
        engines.length === 1 && first.engine !== undefined
          ? { name: first.engine.name, reason: `every run: ${first.engine.reason}` }
          : { name: 'mixed', reason: `the runs used ${engines.join(', ')}` },
      tls: first.tls,
      host: first.host,
      port: first.port,
      mode: first.mode,
      connections: sum((r) => r.connections),
      pipeline: first.pipeline,
      size: first.size,
      payload: first.payload,
      rate: first.rate === null ? null : sum((r) => r.rate ?? 0),
      warmup: Math.max(...runs.map((r) => r.warmup)),
      timeout: first.timeout,
      duration: round(seconds, 3),
      endedEarly: runs.some((r) => r.endedEarly),
      window: common ?? { start: Math.min(...runs.map((r) => r.window.start)), end: Math.max(...runs.map((r) => r.window.end)) },
      // Each run's rate over its own window, added: the rate of the whole while the runs overlap.
      throughput: {
        requestsPerSec: round(
          sum((r) => r.throughput.requestsPerSec),
          1,
        ),
        mbPerSec: round(
          sum((r) => r.throughput.mbPerSec),
          3,
        ),
        sentBytesPerSec: round(
          sum((r) => r.throughput.sentBytesPerSec),
          1,
        ),
        receivedBytesPerSec: round(
          sum((r) => r.throughput.receivedBytesPerSec),
          1,
        ),
      },
      latency: { unit: 'us', ...histogram.summary() },
      histogram: histogram.encode(),
      requests: { sent: sum((r) => r.requests.sent), ok: sum((r) => r.requests.ok), measured: sum((r) => r.requests.measured) },
      errors: {
        total: sum((r) => r.errors.total),
        mismatch: sum((r) => r.errors.mismatch),
        timeout: sum((r) => r.errors.timeout),
        closed: sum((r) => r.errors.closed),
        unexpected: sum((r) => r.errors.unexpected),
        socket: sum((r) => r.errors.socket),
        late: sum((r) => r.errors.late),
      },
      // CPU seconds summed over the runs; the percentage is the busiest run's (each process has its own limit).
      cpu: {
        userSec: round(
          sum((r) => r.cpu.userSec),
          3,
        ),
        systemSec: round(
          sum((r) => r.cpu.systemSec),
          3,
        ),
        percentOfOneCore: round(Math.max(...runs.map((r) => r.cpu.percentOfOneCore)), 1),
        loadThreads: runs.flatMap((r) => r.cpu.loadThreads ?? []),
      },
      timeline: [],
      percentiles: histogram.distribution().map((p) => ({ percentile: round(p.percentile, 6), value: round(p.value, 3) })),
      merged: { runs: merged, common, flagged },
    };
  } finally {
    histogram.destroy();
  }
}
