import { sourceKey } from '../udp/rate-limit.js';

/**
 * Open TCP connections per source: an IPv4 address, or an IPv6 /64 network (one
 * host usually holds a whole /64, as for the UDP rate limit). With PROXY protocol
 * the source is the client address from the header, not the balancer's.
 * Memory: one map entry per source with connections open now.
 */
export class SourceLimit {
  // Per source: its key as first counted, handed to every later connection from it (so that
  // they share one string rather than keep one each), and its connections open.
  private readonly open = new Map<string, { readonly key: string; count: number }>();

  /** `max` connections per source at most; 0 means no limit. */
  constructor(private readonly max: number) {}

  /**
   * Counts a new connection from `address` and returns the key to release it with,
   * or null when that source already has `max` open (refuse it; nothing was counted).
   * Connections from one source get the same key string (for an IPv4 address, equal
   * to the address).
   */
  acquire(address: string | undefined): string | null {
    const key = address === undefined ? '' : sourceKey(address);
    const entry = this.open.get(key);
    if (entry === undefined) {
      this.open.set(key, { key, count: 1 });
      return key;
    }
    if (this.max > 0 && entry.count >= this.max) return null;
    entry.count++;
    return entry.key;
  }

  /** The connection counted under `key` has closed. */
  release(key: string): void {
    const entry = this.open.get(key);
    if (entry === undefined) return;
    if (entry.count <= 1) this.open.delete(key);
    else entry.count--;
  }

  /** Sources with connections open now. */
  get sources(): number {
    return this.open.size;
  }
}
