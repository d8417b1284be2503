import { readdirSync, readFileSync } from 'node:fs';

/**
 * File descriptors kept free beyond the open connections: refusing a
 * connection past `maxConnections` still needs one for a moment (accept, then
 * close), and logging, metrics scrapes and DNS need a few more.
 */
export const FD_HEADROOM = 16;

export interface FdUsage {
  /** The soft `RLIMIT_NOFILE` (Node raises it to the hard limit at start-up). */
  limit: number;
  /** Descriptors open now. */
  open: number;
}

/** The open-file limit and current use, from /proc on Linux; undefined elsewhere or when unlimited. */
export function readFdUsage(): FdUsage | undefined {
  try {
    const match = /^Max open files\s+(\d+)\s/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (match === null) return undefined;
    // readdirSync itself holds one descriptor for the directory while it reads.
    const open = readdirSync('/proc/self/fd').length - 1;
    return { limit: Number(match[1]), open };
  } catch {
    return undefined;
  }
}

/**
 * How many more TCP connections fit under the open-file limit, keeping
 * {@link FD_HEADROOM} spare; at least 1. Undefined when the limit is unknown.
 *
 * Why it matters: past the limit, accept() fails with EMFILE and libuv sheds
 * the pending connections itself (it closes a reserved descriptor, accepts and
 * closes them), which Node never reports, so neither logs nor stats would show
 * it. Capping `maxConnections` below the limit turns that into ordinary,
 * counted and logged refusals.
 */
export function connectionsThatFit(usage: FdUsage | undefined = readFdUsage()): number | undefined {
  if (usage === undefined) return undefined;
  return Math.max(1, usage.limit - usage.open - FD_HEADROOM);
}
