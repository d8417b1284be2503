import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { normalizeServerOptions } from '../../src/options.js';
import { RateLimiter, sourceKey } from '../../src/udp/rate-limit.js';

function takeMany(limiter: RateLimiter, source: string, n: number, now: number): number {
  let granted = 0;
  for (let i = 0; i < n; i++) if (limiter.take(source, now)) granted++;
  return granted;
}

describe('RateLimiter (injected clock, exact)', () => {
  test('a burst of B+K at one instant gets exactly B through', () => {
    const limiter = new RateLimiter(100, 100);
    assert.equal(takeMany(limiter, '192.0.2.1', 100 + 37, 5_000), 100);
  });

  test('refills at `rate` per second, never above `burst`', () => {
    const limiter = new RateLimiter(100, 100);
    assert.equal(takeMany(limiter, 'a', 100, 0), 100);
    assert.equal(limiter.take('a', 9.9), false); // 0.99 of a token
    assert.equal(limiter.take('a', 10), true); // 1 token after 10 ms at 100/s
    assert.equal(takeMany(limiter, 'a', 10, 110), 10); // 100 ms later: 10 more
    assert.equal(takeMany(limiter, 'a', 500, 60_000), 100); // a minute idle: a full bucket, no more
  });

  test('sources are independent', () => {
    const limiter = new RateLimiter(10, 5);
    assert.equal(takeMany(limiter, 'a', 20, 0), 5);
    assert.equal(takeMany(limiter, 'b', 20, 0), 5);
    assert.equal(limiter.take('a', 0), false);
  });

  test('forgetting idle sources is exact: same answers as an unbounded reference model', () => {
    const step = fc.record({
      source: fc.integer({ min: 0, max: 5 }),
      dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 5000 })),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(step, { maxLength: 400 }),
        (rate, burst, steps) => {
          const limiter = new RateLimiter(rate, burst);
          const model = new Map<number, { tokens: number; at: number }>();
          let now = 1000;
          for (const { source, dt } of steps) {
            now += dt;
            const b = model.get(source) ?? { tokens: burst, at: now };
            b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
            b.at = now;
            const expected = b.tokens >= 1;
            if (expected) b.tokens -= 1;
            model.set(source, b);
            assert.equal(limiter.take(`s${source}`, now), expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('the table stays bounded under a flood of new sources; the overflow shares one bucket', () => {
    const limiter = new RateLimiter(10, 10, 100);
    let granted = 0;
    for (let i = 0; i < 50_000; i++) if (limiter.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 0)) granted++;
    assert.ok(limiter.size <= 200, `size ${limiter.size}`);
    // 100 tracked sources got 1 each; the other 49,900 shared one bucket of 10.
    assert.equal(granted, 100 + 10);
    // Once they have gone quiet for two windows, new sources get buckets again.
    assert.equal(limiter.take('203.0.113.9', 2_500), true);
    assert.equal(limiter.size, 1);
  });
});

describe('sourceKey', () => {
  test('IPv4 and IPv4-mapped addresses are their own key', () => {
    assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('::ffff:192.0.2.7'), '::ffff:192.0.2.7');
  });

  test('IPv6 addresses share a key per /64', () => {
    assert.equal(sourceKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2::ffff'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:0DB8:0001:0002::1'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
    assert.equal(sourceKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64%eth0');
    assert.notEqual(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'));
  });
});

test('a fractional rate still answers: the burst is at least one datagram', () => {
  const { udpRateLimit, udpRateBurst } = normalizeServerOptions({ udpRateLimit: 0.5 });
  assert.equal(udpRateBurst, 1);
  const limiter = new RateLimiter(udpRateLimit, udpRateBurst);
  assert.equal(limiter.take('a', 0), true);
  assert.equal(limiter.take('a', 1000), false);
  assert.equal(limiter.take('a', 2000), true); // one every 2 s
  assert.equal(normalizeServerOptions({}).udpRateBurst, 100);
});
