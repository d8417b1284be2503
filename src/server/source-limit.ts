import { sourceKey } from '../udp/rate-limit.js';

/**
 * Open TCP connections per source: an IPv4 address, or an IPv6 /64 network (one
 * host usually holds a whole /64, as for the UDP rate limit). With PROXY protocol
 * the source is the client address from the header, not the balancer's.
 * Memory: one map entry per source with connections open now.
 */
export class SourceLimit {
  private readonly open = new Map<string, number>();

  /** `max` connections per source at most; 0 means no limit. */
  constructor(private readonly max: number) {}

  /**
   * Counts a new connection from `address` and returns the key to release it with,
   * or null when that source already has `max` open (refuse it; nothing was counted).
   */
  acquire(address: string | undefined): string | null {
    const key = address === undefined ? '' : sourceKey(address);
    const n = this.open.get(key) ?? 0;
    if (this.max > 0 && n >= this.max) return null;
    this.open.set(key, n + 1);
    return key;
  }

  /** The connection counted under `key` has closed. */
  release(key: string): void {
    const n = this.open.get(key) ?? 0;
    if (n <= 1) this.open.delete(key);
    else this.open.set(key, n - 1);
  }

  /** Sources with connections open now. */
  get sources(): number {
    return this.open.size;
  }
}
