import { chooseEngine } from './engine.js';
import { LatencyHistogram } from './histogram.js';
import { NativeDriver } from './native.js';
import { type BenchOptions, type BenchProgress, type NormalizedBenchOptions, normalizeBenchOptions } from './options.js';
import type { BenchResult, TimelineSample } from './result.js';
import { PAYLOAD_VARIANTS, SEQ_DIGITS, makePayloads } from './payload.js';
import { Tally, snapshot, type LoadDriver, type TallySnapshot } from './tally.js';
import { TcpDriver } from './tcp.js';
import { UdpDriver } from './udp.js';

const MAX_SCAN_INTERVAL_MS = 100;

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** Variants of the payload: 16, fewer for large requests so memory stays near 8 MiB a copy. */
function variantsFor(size: number): number {
  let k = PAYLOAD_VARIANTS;
  while (k > 1 && k * size > 8 * 1024 * 1024) k /= 2;
  return k;
}

/**
 * Runs one load test against an upcase server (or any uppercase echo) and
 * resolves to its figures. Rejects with a `NetworkError` (`UPCASE_ERR_CONNECT`)
 * if it cannot connect, or an `InvalidArgumentError` for bad options. Wrong
 * replies, timeouts and lost datagrams do not reject: they are counted in
 * `errors`.
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchResult> {
  const normalized = normalizeBenchOptions(options);
  const engine = chooseEngine(normalized);
  // Load threads (worker threads) run the engine chosen here: the JavaScript one, or one native engine thread each.
  const o = { ...normalized, engine: engine.name };
  const threads = Math.min(o.threads, o.connections);
  let result: BenchResult;
  if (threads > 1) {
    // Loaded lazily: a one-thread run never starts a worker.
    const { runThreads } = await import('./threads.js');
    result = await runThreads(o, threads);
  } else {
    result = await runShard(o);
  }
  return { ...result, engine };
}

/** How a load thread's run is driven by the main thread (src/bench/threads.ts). */
export interface ShardHooks {
  /** Awaited once the connections are open, before the clock starts: all threads start together. */
  ready?: () => Promise<void>;
  /** Each interval's latencies, before they are folded and reset (for the main thread's interval percentiles). */
  onInterval?: (progress: BenchProgress, recent: LatencyHistogram) => void;
}

/** One thread's run: the whole of a one-thread run, or one share of the connections (`o.engine` is `native` or `js`). */
export async function runShard(o: NormalizedBenchOptions, hooks: ShardHooks = {}): Promise<BenchResult> {
  const udp = o.transport === 'udp';
  const payloads = makePayloads(o.payload, udp ? o.size - SEQ_DIGITS : o.size, variantsFor(o.size));
  // Replies are recorded into `recent`, which each sample folds into `histogram` inside the measured window.
  const histogram = await LatencyHistogram.create();
  const recent = await LatencyHistogram.create();
  const tally = new Tally(recent);
  const timers: NodeJS.Timeout[] = [];
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  let driver: LoadDriver | null = null;
  try {
    driver =
      o.engine === 'native'
        ? new NativeDriver(o, tally, payloads)
        : udp
          ? new UdpDriver(o, tally, payloads)
          : new TcpDriver(o, tally, payloads);
    await driver.open();
    await hooks.ready?.();
    const d = driver;
    o.signal?.addEventListener('abort', onAbort);
    if (o.signal?.aborted) stop.abort();

    const t0 = performance.now();
    tally.recording = true;
    d.start(t0);
    if (o.rate > 0) timers.push(setInterval(() => d.tick(performance.now()), 1));
    timers.push(
      setInterval(
        () => {
          d.scan(performance.now());
          if (d.alive() === 0) stop.abort();
        },
        Math.min(MAX_SCAN_INTERVAL_MS, Math.max(1, (o.timeout * 1000) / 4)),
      ),
    );

    const timeline: TimelineSample[] = [];
    let windowStart = Infinity;
    let inWindow = false;
    let last = { at: t0, ok: 0, errors: 0 };
    /** Ends the current interval: reports it, and folds its latencies into the result inside the window. */
    const sample = (sync = true): void => {
      if (sync) d.sync?.();
      const now = performance.now();
      const dt = (now - last.at) / 1000;
      const errors = tally.errors;
      const requests = tally.ok - last.ok;
      const rate = dt > 0 ? requests / dt : 0;
      const p50 = recent.count === 0 ? null : round(recent.valueAt(50) / 1000, 3);
      const p99 = recent.count === 0 ? null : round(recent.valueAt(99) / 1000, 3);
      const origin = inWindow ? windowStart : t0;
      if (inWindow) {
        timeline.push({
          t: round((now - windowStart) / 1000, 3),
          requestsPerSec: round(rate, 1),
          mbPerSec: round((rate * o.size) / 1e6, 3),
          errors: errors - last.errors,
          p50,
          p99,
        });
        histogram.add(recent);
      }
      const progress: BenchProgress = {
        elapsed: (now - t0) / 1000,
        warmingUp: !inWindow,
        start: round((last.at - origin) / 1000, 3),
        end: round((now - origin) / 1000, 3),
        requests,
        rate,
        intervalErrors: errors - last.errors,
        errors,
        p50,
        p99,
      };
      hooks.onInterval?.(progress, recent);
      recent.reset();
      o.onProgress?.(progress);
      last = { at: now, ok: tally.ok, errors };
    };
    const sampler = setInterval(() => sample(), o.interval * 1000);
    timers.push(sampler);

    await delay(o.warmup * 1000, stop.signal);
    // The measured window: latencies, counters and CPU between these two points.
    // Every interval is reported, the last one of each phase however short, so the intervals add up to the totals.
    const changed = (): boolean => tally.ok !== last.ok || tally.errors !== last.errors || performance.now() - last.at > 100;
    // A driver off the event loop is synced once here: the window's counters and latencies start at this sync.
    d.sync?.();
    if (changed()) sample(false);
    windowStart = performance.now();
    const wallStart = performance.timeOrigin + windowStart;
    inWindow = true;
    recent.reset();
    const startCounts: TallySnapshot = snapshot(tally);
    const cpuStart = process.cpuUsage();
    const eluStart = performance.eventLoopUtilization();
    const busyStart = d.cpuSeconds?.() ?? 0;
    last = { at: windowStart, ok: tally.ok, errors: tally.errors };
    sampler.refresh();
    await delay(o.duration * 1000, stop.signal);
    const windowEnd = performance.now();
    const cpu = process.cpuUsage(cpuStart);
    const elu = performance.eventLoopUtilization(eluStart);
    // The counters and the latencies of the window end at the same sync: the histogram holds exactly `measured` replies.
    d.sync?.();
    const busy = d.cpuSeconds === undefined ? null : d.cpuSeconds() - busyStart;
    const endCounts = snapshot(tally);
    if (changed()) sample(false);
    clearInterval(sampler);
    histogram.add(recent);
    inWindow = false;
    tally.recording = false;
    const endedEarly = stop.signal.aborted;
    d.stopSending();

    // Let the requests in flight settle (answered or timed out) before closing.
    const drainUntil = performance.now() + o.timeout * 1000 + MAX_SCAN_INTERVAL_MS;
    while (d.inFlight() > 0 && d.alive() > 0 && performance.now() < drainUntil) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (const t of timers) clearInterval(t);
    timers.length = 0;
    await d.close();

    const seconds = (windowEnd - windowStart) / 1000;
    const measured = endCounts.ok - startCounts.ok;
    const cpuSec = (cpu.user + cpu.system) / 1e6;
    return {
      transport: o.transport,
      engine: { name: o.engine === 'native' ? 'native' : 'js', reason: '' },
      tls: o.tls !== null,
      host: o.host,
      port: o.port,
      mode: o.rate > 0 ? 'fixed-rate' : 'closed-loop',
      connections: o.connections,
      pipeline: o.pipeline,
      size: o.size,
      payload: o.payload,
      rate: o.rate > 0 ? o.rate : null,
      warmup: o.warmup,
      timeout: o.timeout,
      duration: round(seconds, 3),
      endedEarly,
      window: { start: Math.round(wallStart), end: Math.round(wallStart + (windowEnd - windowStart)) },
      throughput: {
        requestsPerSec: perSec(measured, seconds),
        mbPerSec: round(perSec(measured * o.size, seconds) / 1e6, 3),
        sentBytesPerSec: perSec(endCounts.bytesSent - startCounts.bytesSent, seconds),
        receivedBytesPerSec: perSec(endCounts.bytesReceived - startCounts.bytesReceived, seconds),
      },
      latency: { unit: 'us', ...histogram.summary() },
      histogram: histogram.encode(),
      requests: { sent: tally.sent, ok: tally.ok, measured },
      errors: {
        total: tally.errors,
        mismatch: tally.mismatch,
        timeout: tally.timeout,
        closed: tally.closed,
        unexpected: tally.unexpected,
        socket: tally.socket,
        late: tally.late,
      },
      cpu: {
        userSec: round(cpu.user / 1e6, 3),
        systemSec: round(cpu.system / 1e6, 3),
        percentOfOneCore: seconds > 0 ? round((cpuSec / seconds) * 100, 1) : 0,
        // The native engine's thread: its CPU time; a JavaScript load thread: its event loop's busy time.
        loadThreads: [round(busy === null ? elu.utilization * 100 : seconds > 0 ? (busy / seconds) * 100 : 0, 1)],
      },
      timeline,
      percentiles: histogram.distribution().map((p) => ({ percentile: round(p.percentile, 6), value: round(p.value, 3) })),
    };
  } finally {
    for (const t of timers) clearInterval(t);
    o.signal?.removeEventListener('abort', onAbort);
    if (driver !== null) await driver.close();
    histogram.destroy();
    recent.destroy();
  }
}

function perSec(count: number, seconds: number): number {
  return seconds > 0 ? round(count / seconds, 1) : 0;
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export type { BenchResult, TimelineSample } from './result.js';
