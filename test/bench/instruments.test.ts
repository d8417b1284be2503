import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import type { BenchProgress } from '../../src/bench/options.js';
import { runBench } from '../../src/bench/run.js';
import { deadUdpPort } from '../helpers/programs.js';
import { corruptingTcpServer } from './fakes.js';
import { suiteServer } from '../helpers/serve.js';

describe('bench figures a user can trust', () => {
  const shared = suiteServer({ udpRateLimit: 0 });

  test("the issue's run (1 connection, 200/s, 1 s): every percentile within [min, max]", async () => {
    const r = await runBench({ port: shared.port, connections: 1, rate: 200, duration: 1, warmup: 0 });
    const l = r.latency;
    assert.ok(l.count > 150, String(l.count));
    for (const p of [l.p50, l.p90, l.p99, l.p99_9]) assert.ok(p! >= l.min! && p! <= l.max!, JSON.stringify(l));
    assert.ok(r.percentiles.every((p) => p.value <= l.max!));
  });

  test('--json carries the encoded histogram: it decodes to the same count, percentiles and exact bounds', async () => {
    const r = await runBench({ transport: 'udp', port: shared.port, pipeline: 8, duration: 0.4, warmup: 0 });
    const h = await LatencyHistogram.decode(r.histogram);
    try {
      assert.deepEqual({ unit: 'us', ...h.summary() }, r.latency);
      assert.equal(h.count, r.requests.measured);
    } finally {
      h.destroy();
    }
  });

  for (const threads of [1, 2]) {
    test(`progress intervals tile the run: contiguous spans, and their requests add up to the measured total (${threads} thread(s))`, async () => {
      await tiling(threads);
    });
  }

  test('load threads: the connections are shared out, counts and the histogram add up exactly, one busy share per thread', async () => {
    const fake = await corruptingTcpServer(64, 7);
    try {
      const r = await runBench({ port: fake.port, connections: 5, pipeline: 2, threads: 2, duration: 0.6, warmup: 0 });
      assert.equal(r.connections, 5);
      assert.equal(r.cpu.loadThreads.length, 2);
      assert.ok(fake.counts.corrupted > 5);
      assert.equal(r.requests.sent, fake.counts.requests);
      assert.equal(r.errors.mismatch, fake.counts.corrupted);
      assert.equal(r.requests.ok, r.requests.sent - fake.counts.corrupted);
      const h = await LatencyHistogram.decode(r.histogram);
      assert.equal(h.count, r.requests.measured);
      assert.deepEqual({ unit: 'us', ...h.summary() }, r.latency);
      h.destroy();
    } finally {
      await fake.close();
    }
  });

  async function tiling(threads: number): Promise<void> {
    const seen: BenchProgress[] = [];
    const r = await runBench({
      port: shared.port,
      connections: 2,
      threads,
      duration: 1.1,
      warmup: 0.3,
      interval: 0.25,
      onProgress: (p) => seen.push(p),
    });
    const warm = seen.filter((p) => p.warmingUp);
    const measured = seen.filter((p) => !p.warmingUp);
    assert.ok(warm.length >= 1 && measured.length >= 4, JSON.stringify(seen));
    assert.equal(measured[0]!.start, 0);
    for (let i = 1; i < measured.length; i++) assert.equal(measured[i]!.start, measured[i - 1]!.end);
    assert.equal(
      measured.reduce((n, p) => n + p.requests, 0),
      r.requests.measured,
    );
    assert.ok(measured.every((p) => p.p50 === null || p.p99! >= p.p50!));
    assert.equal(r.timeline.length, measured.length);
    assert.equal(r.cpu.loadThreads.length, threads);
  }
});

test('UDP to a closed port: ICMP port unreachable counts as socket errors, one per request, and no latency figures', async () => {
  const port = await deadUdpPort();
  const r = await runBench({ transport: 'udp', port, pipeline: 16, duration: 0.4, warmup: 0, timeout: 0.2 });
  assert.equal(r.requests.ok, 0);
  assert.ok(r.errors.socket > 0);
  // Several ICMP errors that arrive together reach the socket as one: those requests time out.
  assert.ok(r.errors.socket > r.errors.timeout, JSON.stringify(r.errors));
  assert.equal(r.errors.socket + r.errors.timeout, r.requests.sent);
  assert.equal(r.latency.count, 0);
  for (const k of ['min', 'mean', 'stdev', 'p50', 'p90', 'p99', 'p99_9', 'max'] as const) assert.equal(r.latency[k], null, k);
  assert.deepEqual(r.percentiles, []);
});

test('UDP server gone mid-run: requests already answered count ok, the ICMP errors after it count as socket errors', async () => {
  const { lossyUdpServer } = await import('./fakes.js');
  const fake = await lossyUdpServer(1_000_000, 1_000_000);
  setTimeout(() => void fake.close(), 300);
  const r = await runBench({ transport: 'udp', port: fake.port, pipeline: 4, duration: 0.9, warmup: 0, timeout: 0.1 });
  assert.ok(r.requests.ok > 0);
  assert.ok(r.errors.socket > 0, JSON.stringify(r.errors));
  assert.equal(r.requests.ok + r.errors.timeout + r.errors.socket, r.requests.sent);
});
