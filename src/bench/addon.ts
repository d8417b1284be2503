import { type AddonStatus, type AddonUnavailable, addonFix, loadAddon, readNamedInts } from '../addons.js';
import { SEQ_DIGITS } from './payload.js';

/**
 * The optional native engine of `upcase bench` (native/bench_engine.c), as an addon:
 * loading it, reading its constants by name, and which workloads it runs. The driver
 * that runs a load on it is src/bench/native.ts. This module imports no bench options
 * (the options table asks it for the `threads` default).
 */

export interface EngineHandle {
  readonly __brand: 'upcase-bench-engine';
}

export interface NativeBenchBinding {
  readonly counters: unknown;
  readonly states: unknown;
  readonly layout: unknown;
  create(config: {
    udp: number;
    address: string;
    port: number;
    connections: number;
    pipeline: number;
    size: number;
    timeoutMs: number;
    bodies: Uint8Array;
    expected: Uint8Array;
    expectedOffsets: Uint32Array;
  }): EngineHandle;
  start(engine: EngineHandle): void;
  stopSending(engine: EngineHandle): void;
  close(engine: EngineHandle): void;
  poll(engine: EngineHandle, counters: Float64Array, values: Float64Array, counts: Float64Array): number;
  /** The value `poll` reports for a latency of `ns` nanoseconds: its bucket's lowest (for the tests). */
  bucketStart(ns: number): number;
}

/** Every counter this file reads from the engine, by name (C_* in native/bench_engine.c). */
export const NATIVE_BENCH_COUNTERS = [
  'ok',
  'mismatch',
  'timeout',
  'closed',
  'unexpected',
  'socket',
  'late',
  'sent',
  'bytesSent',
  'bytesReceived',
  'inFlight',
  'alive',
  'state',
  'errno',
  'cpuNs',
  'minNs',
  'maxNs',
] as const;
export const NATIVE_BENCH_STATES = ['connecting', 'ready', 'running', 'failed', 'done'] as const;
type CounterName = (typeof NATIVE_BENCH_COUNTERS)[number];
type StateName = (typeof NATIVE_BENCH_STATES)[number];

export interface NativeBenchConstants {
  readonly counter: Readonly<Record<CounterName, number>>;
  readonly counterCount: number;
  readonly state: Readonly<Record<StateName, number>>;
  /** Bucket slots of the engine's histogram: the most (value, count) pairs one poll returns. */
  readonly slots: number;
}

// The histogram layout the engine's buckets follow (src/bench/histogram.ts) and the sequence number's width.
const SIGNIFICANT_DIGITS = 3;

/** The engine's constants, read by name: throws naming any that is missing, doubled, or that disagrees with TypeScript. */
export function readNativeBenchConstants(binding: Pick<NativeBenchBinding, 'counters' | 'states' | 'layout'>): NativeBenchConstants {
  const counter = readNamedInts(binding, 'counters', NATIVE_BENCH_COUNTERS, { bounded: true });
  const state = readNamedInts(binding, 'states', NATIVE_BENCH_STATES);
  const layout = readNamedInts(binding, 'layout', ['slots', 'significantDigits', 'seqDigits'] as const);
  if (layout.significantDigits !== SIGNIFICANT_DIGITS) {
    throw new Error(`\`layout.significantDigits\` is ${layout.significantDigits}, the histograms keep ${SIGNIFICANT_DIGITS}`);
  }
  if (layout.seqDigits !== SEQ_DIGITS)
    throw new Error(`\`layout.seqDigits\` is ${layout.seqDigits}, src/bench/payload.ts writes ${SEQ_DIGITS}`);
  return { counter, counterCount: counter.length!, state, slots: layout.slots };
}

export interface LoadedNativeBench {
  readonly binding: NativeBenchBinding;
  readonly constants: NativeBenchConstants;
}

let cached: AddonStatus<LoadedNativeBench> | undefined;

/**
 * The native engine with its constants read, or why it cannot be used (as data:
 * not built, not for this platform, disabled by `UPCASE_NATIVE=0`, or a load
 * error — an addon whose constants do not match this file counts as one).
 */
export function nativeBenchStatus(): AddonStatus<LoadedNativeBench> {
  if (cached !== undefined) return cached;
  const status = loadAddon<NativeBenchBinding>('upcase_bench', true);
  if (status.binding === null) {
    cached = status;
    return cached;
  }
  try {
    cached = { binding: { binding: status.binding, constants: readNativeBenchConstants(status.binding) }, unavailable: null };
  } catch (err) {
    cached = {
      binding: null,
      unavailable: { reason: 'load-error', detail: `upcase_bench.node does not match src/bench/native.ts: ${(err as Error).message}` },
    };
  }
  return cached;
}

/** The workload the native engine does not run, in words (null when it runs this one). */
export function nativeUnsupported(o: { rate: number; tls: unknown }): string | null {
  if (o.rate > 0) return 'fixed-rate load (`rate`)';
  // Normalized: null without TLS; in the options table's values: false.
  if (o.tls !== null && o.tls !== false && o.tls !== undefined) return 'TLS';
  return null;
}

/**
 * Whether `auto` picks the native engine for these options: not `js`, a workload it
 * runs, and the addon usable. (The options table's default for `threads` asks it.)
 */
export function nativeFits(o: { engine: unknown; rate: number; tls: unknown }): boolean {
  return o.engine !== 'js' && nativeUnsupported(o) === null && nativeBenchStatus().binding !== null;
}

/** Why the addon is missing, for a person: `not built (no C compiler …); install a C compiler …`. */
export function describeUnavailable(u: AddonUnavailable): string {
  const what = {
    disabled: 'disabled',
    platform: 'not available here',
    'not-built': 'not built',
    'load-error': 'not loadable',
    refused: 'refused',
  }[u.reason];
  return `${what} (${u.detail}); ${addonFix(u)}`;
}
