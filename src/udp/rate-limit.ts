interface Bucket {
  tokens: number;
  /** Last refill (ms, on the caller's clock). */
  at: number;
}

/**
 * Per-source token buckets for UDP: `rate` datagrams per second, with room for
 * `burst` at once. A new source starts with a full bucket.
 *
 * Memory and time stay bounded under a flood of spoofed sources: buckets live in
 * two generations that rotate every `window` (at least the time an empty bucket
 * needs to refill), so a source unseen for two windows is forgotten, which is
 * exact because its bucket would be full again anyway. Each generation holds at
 * most `maxSources`; past that, new sources share one overflow bucket. Every
 * `take` is O(1): no sweeps that a flood could make expensive.
 */
export class RateLimiter {
  private current = new Map<string, Bucket>();
  private previous = new Map<string, Bucket>();
  private rotatedAt: number | null = null;
  private readonly overflow: Bucket;
  private readonly windowMs: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxSources = 65_536,
  ) {
    this.overflow = { tokens: burst, at: 0 };
    this.windowMs = Math.max(1000, (burst * 1000) / rate);
  }

  /** Takes one token for `source`; false means drop. `now` is in milliseconds from a monotonic clock. */
  take(source: string, now: number): boolean {
    this.rotate(now);
    let bucket = this.current.get(source);
    if (bucket === undefined) {
      const known = this.previous.get(source);
      if (this.current.size < this.maxSources) {
        bucket = known ?? { tokens: this.burst, at: now };
        this.current.set(source, bucket);
      } else {
        bucket = known ?? this.overflow;
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

  /** Sources tracked now (both generations; at most 2 × `maxSources`). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  private rotate(now: number): void {
    if (this.rotatedAt === null) {
      this.rotatedAt = now;
      return;
    }
    const since = now - this.rotatedAt;
    if (since < this.windowMs) return;
    // Every bucket in `current` was last touched before rotatedAt + window <= now - window
    // when since >= 2 windows, so all of them are full again: forget both generations.
    this.previous = since >= 2 * this.windowMs ? new Map() : this.current;
    this.current = new Map();
    this.rotatedAt = now;
  }
}

/**
 * The rate-limit key for a source address: the address itself for IPv4 (also
 * IPv4-mapped `::ffff:a.b.c.d`), and the /64 network for IPv6, because one host
 * or customer usually holds a whole /64 and could otherwise use a fresh address
 * for every datagram.
 */
export function sourceKey(address: string): string {
  if (!address.includes(':') || address.startsWith('::ffff:')) return address;
  const zoneAt = address.indexOf('%');
  const zone = zoneAt === -1 ? '' : address.slice(zoneAt);
  const bare = (zoneAt === -1 ? address : address.slice(0, zoneAt)).toLowerCase();
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['v4', 'v4'] : [g]))); // a dotted quad is 2 groups
  const gap = bare.indexOf('::');
  let all: string[];
  if (gap === -1) {
    all = groups(bare);
  } else {
    const head = groups(bare.slice(0, gap));
    const tail = groups(bare.slice(gap + 2));
    all = [...head, ...new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  }
  const prefix = all.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, ''));
  return `${prefix.join(':')}::/64${zone}`;
}
