export { runBench, type BenchResult, type TimelineSample } from './run.js';
export {
  BENCH_DEFAULTS,
  normalizeBenchOptions,
  type BenchOptions,
  type NormalizedBenchOptions,
  type BenchProgress,
  type BenchTransport,
  type PayloadKind,
} from './options.js';
export { makePayloads, makeBody, writeSeq, readSeq, SEQ_DIGITS, type PayloadSet } from './payload.js';
export { renderSvg, renderHtml, renderPng, writeReport, reportFormat, REPORT_FORMATS } from './chart.js';
export { LatencyHistogram, type LatencySummary, type PercentilePoint, type EncodedHistogram } from './histogram.js';
export { mergeResults, WORKLOAD_FIELDS, MIN_OVERLAP, type MergeOptions, type MergedResult, type MergedRun } from './merge.js';
