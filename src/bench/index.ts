/**
 * `upcase/bench`: the load generator's API, as `upcase bench` uses it.
 *
 * ```ts
 * import { runBench, writeReport } from 'upcase/bench';
 * const result = await runBench({ host: '127.0.0.1', port: 12000, connections: 8, duration: 5 });
 * await writeReport(result, 'report.svg');
 * ```
 */
export { runBench, type BenchResult, type TimelineSample } from './run.js';
export {
  BENCH_DEFAULTS,
  type BenchOptions,
  type BenchProgress,
  type BenchTransport,
  type BenchEngine,
  type PayloadKind,
} from './options.js';
export type { EngineChoice } from './engine.js';
export { renderSvg, renderHtml, renderPng, writeReport, REPORT_FORMATS } from './chart.js';
export { LatencyHistogram, type LatencySummary, type PercentilePoint, type EncodedHistogram } from './histogram.js';
export { mergeResults, WORKLOAD_FIELDS, MIN_OVERLAP, type MergeOptions, type MergedResult, type MergedRun } from './merge.js';
