/**
 * Per-source-address token buckets for UDP: `rate` datagrams per second,
 * with room for `burst` at once. The table is bounded: when it is full, buckets
 * that have refilled completely (idle sources) are swept, and if none has,
 * new sources share one overflow bucket rather than growing memory.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly overflow = { tokens: 0, at: 0 };

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxSources = 65_536,
  ) {
    this.overflow.tokens = burst;
  }

  /** Takes one token for `source`; false means drop. `now` is in milliseconds. */
  take(source: string, now: number): boolean {
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxSources) this.sweep(now);
      if (this.buckets.size >= this.maxSources) {
        bucket = this.overflow;
      } else {
        bucket = { tokens: this.burst, at: now };
        this.buckets.set(source, bucket);
      }
    }
    const elapsed = now - bucket.at;
    if (elapsed > 0) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsed * this.rate) / 1000);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    const full = (this.burst * 1000) / this.rate; // ms for an empty bucket to refill
    for (const [source, bucket] of this.buckets) {
      if (now - bucket.at >= full) this.buckets.delete(source);
    }
  }
}
