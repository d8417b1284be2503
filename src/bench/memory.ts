/**
 * Memory per idle connection, as the benchmark suite measures it (bench/run.mjs, docs/benchmarks.md):
 * a server's resident set (RSS, read from outside in /proc) after a garbage collection and once it
 * has settled, before and after N connections are opened and have made one round trip each. RSS
 * holds what the server process has in user space (its heap, its buffers, libuv's handles); the
 * kernel's socket structures and buffers are not in it.
 *
 * The figure is a difference of two large numbers, so noise can make it small, zero or negative.
 * {@link judgeIdleMemory} says whether one measurement is a figure at all: never a figure below
 * what a connection must cost, from a run where connections were lost or RSS did not settle.
 */

/** One measurement of one server: what the load generator reported and the two settled RSS readings. */
export interface IdleMemorySample {
  /** Connections asked for, and those open with their round trip done when RSS was read. */
  requested: number;
  open: number;
  /** Resident set in KiB after settling, before the connections were opened and while they were. */
  rssBeforeKb: number;
  rssAfterKb: number;
  /** Both readings settled (consecutive samples agreed, see {@link rssSettled}). */
  settled: boolean;
  /**
   * The least one connection can cost this server in user space, in KiB: its per-connection
   * record (a libuv handle, a struct, a JS socket object). A figure below it is noise. 0 only for
   * a server that keeps nothing per idle connection in user space (the C ceiling): its figure
   * may then be 0, never negative.
   */
  floorKb: number;
  /**
   * For a Node.js server: its JS heap's growth over the same interval (heapUsed after − before, KiB)
   * and the heap's free space before (heapTotal − heapUsed, KiB). New objects either fill that free
   * space or take pages that become resident, so RSS cannot have grown by less than the heap grew
   * beyond it.
   */
  heap?: { growthKb: number; freeBeforeKb: number };
}

// Slack for the cross-check with the heap: RSS is read a moment apart from memoryUsage().
const HEAP_TOLERANCE_KB = 256;

export type IdleMemoryVerdict = { ok: true; kbPerConnection: number } | { ok: false; kbPerConnection: number; reason: string };

/** KiB per connection from one measurement, or why it is not a measurement. */
export function judgeIdleMemory(s: IdleMemorySample): IdleMemoryVerdict {
  const kbPerConnection = s.open > 0 ? (s.rssAfterKb - s.rssBeforeKb) / s.open : Number.NaN;
  const fail = (reason: string): IdleMemoryVerdict => ({ ok: false, kbPerConnection, reason });
  if (s.open < s.requested) return fail(`only ${s.open} of ${s.requested} connections were open`);
  if (!s.settled) return fail('RSS did not settle');
  if (!Number.isFinite(kbPerConnection)) return fail('no figure');
  if (kbPerConnection < 0 || (kbPerConnection === 0 && s.floorKb > 0)) {
    return fail(`${round2(kbPerConnection)} KB per connection: RSS did not grow, noise`);
  }
  if (kbPerConnection < s.floorKb) {
    return fail(`${round2(kbPerConnection)} KB per connection is below the ${s.floorKb} KB a connection must cost: noise`);
  }
  if (s.heap !== undefined) {
    const rssGrowth = s.rssAfterKb - s.rssBeforeKb;
    const least = s.heap.growthKb - s.heap.freeBeforeKb - HEAP_TOLERANCE_KB;
    if (rssGrowth < least) {
      return fail(`RSS grew by ${round2(rssGrowth)} KiB, less than the JS heap's ${round2(least)} KiB beyond its free space: noise`);
    }
  }
  return { ok: true, kbPerConnection };
}

/**
 * Whether the last `count` RSS samples (KiB, oldest first) agree within `toleranceKb`: memory
 * has stopped moving (freed pages returned, lazy allocations done).
 */
export function rssSettled(samples: readonly number[], count: number, toleranceKb: number): boolean {
  if (samples.length < count) return false;
  const last = samples.slice(-count);
  return Math.max(...last) - Math.min(...last) <= toleranceKb;
}

/** Several rounds of one server: the median of the valid ones, their range, and every failure. */
export interface IdleMemorySummary {
  /** NaN when no round was valid. */
  median: number;
  min: number;
  max: number;
  rounds: number;
  failures: string[];
}

export function summarizeIdleMemory(verdicts: readonly IdleMemoryVerdict[]): IdleMemorySummary {
  const ok = verdicts.flatMap((v) => (v.ok ? [v.kbPerConnection] : [])).sort((a, b) => a - b);
  const failures = verdicts.flatMap((v) => (v.ok ? [] : [v.reason]));
  const m = Math.floor(ok.length / 2);
  const median = ok.length === 0 ? Number.NaN : ok.length % 2 ? ok[m]! : (ok[m - 1]! + ok[m]!) / 2;
  return { median, min: ok[0] ?? Number.NaN, max: ok.at(-1) ?? Number.NaN, rounds: verdicts.length, failures };
}

/**
 * A memory target is met only when every round of every server it names was a valid
 * measurement (a failed round is never a pass) and `pass` holds for the medians.
 */
export function idleMemoryTargetMet(summaries: readonly IdleMemorySummary[], pass: (...medians: number[]) => boolean): boolean {
  if (summaries.some((s) => s.rounds === 0 || s.failures.length > 0 || !Number.isFinite(s.median))) return false;
  return pass(...summaries.map((s) => s.median));
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
