import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import { prng } from '../../src/bench/payload.js';

/** The value at `percentile` of sorted `values`, by HdrHistogram's rank rule (ceil(p/100 × n), at least 1). */
function exactAt(sorted: number[], percentile: number): number {
  const rank = Math.max(1, Math.ceil((percentile / 100) * sorted.length - 1e-9));
  return sorted[rank - 1]!;
}

test('percentiles never exceed the maximum: the case of the issue (p99.9 5836.8 against max 5833.2)', async () => {
  const h = await LatencyHistogram.create();
  try {
    for (let i = 0; i < 199; i++) h.recordMs(0.7 + i / 1000);
    h.recordMs(5.8332);
    const s = h.summary();
    assert.equal(s.max, 5833.2);
    assert.equal(s.p99_9, 5833.2);
    assert.ok(s.p99! <= s.max! && s.p50! >= s.min!);
    assert.ok(h.distribution().every((p) => p.value <= 5833.2));
  } finally {
    h.destroy();
  }
});

test('percentiles are the recorded values to 3 significant digits: never below, at most 0.1% above, never above max', async () => {
  const h = await LatencyHistogram.create();
  const rand = prng(7);
  const ns: number[] = [];
  try {
    for (let i = 0; i < 20_000; i++) {
      // Latencies from 10 µs to about 20 ms, heavy-tailed.
      const v = Math.round(10_000 / (rand() * 0.9995 + 0.0005));
      ns.push(v);
      h.recordMs(v / 1e6);
    }
    ns.sort((a, b) => a - b);
    for (const p of [0, 1, 10, 50, 90, 99, 99.9, 99.99, 100]) {
      const exact = exactAt(ns, p);
      const got = h.valueAt(p);
      assert.ok(got <= ns.at(-1)!, `p${p}: ${got} above max`);
      if (p === 0) continue;
      assert.ok(got >= exact && got <= exact * 1.001 + 1, `p${p}: ${got} vs exact ${exact}`);
    }
    assert.equal(h.min, ns[0]);
    assert.equal(h.max, ns.at(-1));
  } finally {
    h.destroy();
  }
});

test('no values: every latency figure is null, the distribution is empty', async () => {
  const h = await LatencyHistogram.create();
  try {
    assert.deepEqual(h.summary(), {
      count: 0,
      min: null,
      mean: null,
      stdev: null,
      p50: null,
      p90: null,
      p99: null,
      p99_9: null,
      max: null,
    });
    assert.deepEqual(h.distribution(), []);
    assert.equal(h.encode().max, null);
  } finally {
    h.destroy();
  }
});

test('encode → decode keeps every count and the exact min and max; adding decoded histograms is exact', async () => {
  const parts = await Promise.all([1, 2, 3].map(() => LatencyHistogram.create()));
  const union = await LatencyHistogram.create();
  const rand = prng(11);
  try {
    for (const [k, part] of parts.entries()) {
      for (let i = 0; i < 5000; i++) {
        const ms = 0.01 + rand() * (k + 1) * 3;
        part.recordMs(ms);
        union.recordMs(ms);
      }
    }
    const merged = await LatencyHistogram.create();
    for (const part of parts) {
      const decoded = await LatencyHistogram.decode(JSON.parse(JSON.stringify(part.encode())));
      assert.equal(decoded.count, part.count);
      assert.equal(decoded.max, part.max);
      assert.equal(decoded.min, part.min);
      merged.add(decoded);
      decoded.destroy();
    }
    assert.deepEqual(merged.summary(), union.summary());
    assert.deepEqual(merged.distribution(), union.distribution());
    merged.destroy();
  } finally {
    for (const h of [...parts, union]) h.destroy();
  }
});
