import { Worker } from 'node:worker_threads';
import { deserializeError, type SerializedError, UpcaseError } from '../errors.js';
import { type EncodedHistogram, LatencyHistogram } from './histogram.js';
import { mergeResults } from './merge.js';
import type { BenchProgress, NormalizedBenchOptions } from './options.js';
import type { BenchResult, TimelineSample } from './result.js';

/**
 * A run spread over `threads` worker threads: the connections (and a fixed
 * rate) are shared out, each thread runs and verifies its share with its own
 * event loop and histogram, all start together once every connection is open,
 * and the main thread adds their intervals and results up. Histograms are
 * merged exactly (the same buckets), so the percentiles are those a single
 * histogram of every reply would give.
 */

type FromWorker =
  | { type: 'ready' }
  | { type: 'interval'; progress: BenchProgress; histogram: EncodedHistogram }
  | { type: 'result'; result: BenchResult }
  | { type: 'error'; error: SerializedError };

/** Splits `n` as evenly as possible into `parts`. */
export function shares(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

// Under tsx (the tests) this module is TypeScript, and so is its worker: Node 20 does not carry
// tsx's loader into worker threads, so the worker registers it before importing the module.
const TYPESCRIPT = import.meta.url.endsWith('.ts');
const WORKER = new URL(TYPESCRIPT ? './worker.ts' : './worker.js', import.meta.url);

function startWorker(workerData: unknown): Worker {
  if (!TYPESCRIPT) return new Worker(WORKER, { workerData });
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(WORKER.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export async function runThreads(o: NormalizedBenchOptions, threads: number): Promise<BenchResult> {
  const { onProgress, signal, ...plain } = o;
  const counts = shares(o.connections, threads);
  const workers = counts.map((connections) =>
    startWorker({ options: { ...plain, connections, rate: (o.rate * connections) / o.connections, threads: 1 } }),
  );
  // Interval k of each phase (warmup, then the measured window) of every thread, added up once
  // each thread has sent it. Threads end their warmup with a short interval of their own, so
  // the warmup's last intervals are added up with what came once every thread is measuring.
  type Part = { progress: BenchProgress; histogram: EncodedHistogram };
  const intervals = { warm: [] as Part[][], run: [] as Part[][] };
  const seen = Array.from({ length: threads }, () => ({ warm: 0, run: 0 }));
  const timeline: TimelineSample[] = [];
  const emitted = { warm: 0, run: 0 };
  const lastEnd = { warm: 0, run: 0 };
  let chain = Promise.resolve();
  const emit = async (parts: Array<{ progress: BenchProgress; histogram: EncodedHistogram }>): Promise<void> => {
    const merged = await LatencyHistogram.create();
    try {
      for (const part of parts) {
        const h = await LatencyHistogram.decode(part.histogram);
        merged.add(h);
        h.destroy();
      }
      const first = parts[0]!.progress;
      const sum = (f: (p: BenchProgress) => number): number => parts.reduce((n, part) => n + f(part.progress), 0);
      const p50 = merged.count === 0 ? null : round(merged.valueAt(50) / 1000, 3);
      const p99 = merged.count === 0 ? null : round(merged.valueAt(99) / 1000, 3);
      const progress: BenchProgress = {
        elapsed: Math.max(...parts.map((part) => part.progress.elapsed)),
        warmingUp: first.warmingUp,
        // The intervals tile each phase, as a one-thread run's do.
        start: first.warmingUp ? lastEnd.warm : lastEnd.run,
        end: Math.max(...parts.map((part) => part.progress.end)),
        requests: sum((p) => p.requests),
        rate: sum((p) => p.rate),
        intervalErrors: sum((p) => p.intervalErrors),
        errors: sum((p) => p.errors),
        p50,
        p99,
      };
      lastEnd[progress.warmingUp ? 'warm' : 'run'] = progress.end;
      if (!progress.warmingUp) {
        timeline.push({
          t: progress.end,
          requestsPerSec: round(progress.rate, 1),
          mbPerSec: round((progress.rate * o.size) / 1e6, 3),
          errors: progress.intervalErrors,
          p50,
          p99,
        });
      }
      onProgress?.(progress);
    } finally {
      merged.destroy();
    }
  };
  const flush = (all: boolean): void => {
    const measuring = all || seen.every((n) => n.run > 0);
    for (const phase of ['warm', 'run'] as const) {
      const list = intervals[phase];
      while (emitted[phase] < list.length) {
        const parts = list[emitted[phase]]!.filter((p) => p !== undefined);
        const complete = parts.length === threads || (phase === 'warm' && measuring) || all;
        if (!complete) break;
        emitted[phase]++;
        if (parts.length > 0) chain = chain.then(() => emit(parts));
      }
      // The measured window's intervals only after every warmup interval.
      if (phase === 'warm' && emitted.warm < list.length) return;
    }
  };

  const results: BenchResult[] = [];
  let failure: Error | null = null;
  let ready = 0;
  const stopAll = (): void => {
    for (const w of workers) w.postMessage({ type: 'stop' });
  };
  signal?.addEventListener('abort', stopAll);
  try {
    await Promise.all(
      workers.map(
        (w, i) =>
          new Promise<void>((resolve) => {
            w.on('message', (m: FromWorker) => {
              if (m.type === 'ready') {
                if (++ready === threads) for (const other of workers) other.postMessage({ type: 'go' });
              } else if (m.type === 'interval') {
                const phase = m.progress.warmingUp ? 'warm' : 'run';
                const k = seen[i]![phase]++;
                (intervals[phase][k] ??= [])[i] = { progress: m.progress, histogram: m.histogram };
                flush(false);
              } else if (m.type === 'result') {
                results[i] = m.result;
              } else {
                // One thread could not connect: give the others up too.
                failure ??= deserializeError(m.error);
                stopAll();
              }
            });
            w.on('error', (err) => {
              failure ??= err;
              stopAll();
            });
            w.on('exit', () => {
              if (results[i] === undefined && failure === null)
                failure = new UpcaseError('UPCASE_ERR_WORKER', `load thread ${i + 1} exited without a result`);
              // A thread that is gone can no longer say it is ready: release the others.
              if (results[i] === undefined) stopAll();
              resolve();
            });
          }),
      ),
    );
  } finally {
    signal?.removeEventListener('abort', stopAll);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  if (failure !== null) throw failure;
  flush(true);
  await chain;

  const merged = await mergeResults(results);
  const { merged: _, ...result } = merged;
  const cpu = results[0]!.cpu;
  return {
    ...result,
    rate: o.rate > 0 ? o.rate : null,
    endedEarly: results.some((r) => r.endedEarly),
    duration: round(Math.max(...results.map((r) => r.duration)), 3),
    timeline,
    // process.cpuUsage() counts every thread of the process: any thread's window gives it.
    cpu: { ...cpu, loadThreads: results.flatMap((r) => r.cpu.loadThreads) },
  };
}
