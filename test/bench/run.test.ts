import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runBench } from '../../src/bench/run.js';
import { corruptingTcpServer, lossyUdpServer } from './fakes.js';
import { suiteServer } from '../helpers/serve.js';

describe('runBench against upcase', () => {
  const shared = suiteServer({ udpRateLimit: 0 });

  test('TCP closed loop: nonzero throughput, zero errors, every request answered', async () => {
    const r = await runBench({ port: shared.port, connections: 8, pipeline: 4, duration: 0.8, warmup: 0.2 });
    assert.equal(r.transport, 'tcp');
    assert.equal(r.mode, 'closed-loop');
    assert.ok(r.throughput.requestsPerSec > 0);
    assert.ok(r.throughput.mbPerSec > 0);
    assert.ok(r.requests.measured > 0);
    assert.deepEqual(r.errors, { total: 0, mismatch: 0, timeout: 0, closed: 0, unexpected: 0, socket: 0, late: 0 });
    assert.equal(r.requests.ok, r.requests.sent);
    assert.equal(r.latency.count, r.requests.measured);
    assert.ok(r.latency.p50! > 0 && r.latency.p50! <= r.latency.p99! && r.latency.p99! <= r.latency.max!);
  });

  test('TCP with UTF-8 payloads whose uppercase changes length: zero errors', async () => {
    const r = await runBench({ port: shared.port, connections: 4, pipeline: 8, size: 200, payload: 'utf8', duration: 0.5, warmup: 0 });
    assert.ok(r.requests.measured > 0);
    assert.equal(r.errors.total, 0);
    // ß → SS and friends: replies are longer than requests.
    assert.ok(r.throughput.receivedBytesPerSec > r.throughput.sentBytesPerSec);
  });

  test('UDP closed loop: nonzero throughput, zero errors', async () => {
    const r = await runBench({ transport: 'udp', port: shared.port, pipeline: 16, duration: 0.8, warmup: 0.2, payload: 'utf8' });
    assert.equal(r.transport, 'udp');
    assert.equal(r.connections, 1);
    assert.ok(r.throughput.requestsPerSec > 0);
    assert.equal(r.errors.total, 0);
    assert.equal(r.requests.ok, r.requests.sent);
  });

  test('fixed rate: about rate × duration requests, latency from intended send times', async () => {
    for (const transport of ['tcp', 'udp'] as const) {
      const r = await runBench({ transport, port: shared.port, connections: 4, rate: 1000, duration: 1, warmup: 0 });
      assert.equal(r.mode, 'fixed-rate');
      assert.equal(r.rate, 1000);
      assert.ok(r.requests.measured >= 800 && r.requests.measured <= 1200, `${transport}: ${r.requests.measured} requests`);
      assert.equal(r.errors.total, 0);
    }
  });

  test('the timeline has one sample per second of the measured window', async () => {
    const r = await runBench({ port: shared.port, connections: 2, duration: 2.2, warmup: 0 });
    assert.ok(r.timeline.length >= 2 && r.timeline.length <= 3, JSON.stringify(r.timeline));
    assert.ok(r.timeline.every((s) => s.requestsPerSec > 0 && s.errors === 0));
    assert.ok(r.percentiles.length > 2);
    assert.equal(r.percentiles.at(-1)!.percentile, 100);
  });

  test('aborting ends the run early with what was measured', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const r = await runBench({ port: shared.port, connections: 2, duration: 30, warmup: 0, signal: controller.signal });
    assert.equal(r.endedEarly, true);
    assert.ok(r.duration < 5);
    assert.equal(r.errors.total, 0);
  });
});

describe('runBench counts errors exactly', () => {
  test('TCP: every 7th reply corrupted → exactly that many mismatches', async (t) => {
    const fake = await corruptingTcpServer(64, 7);
    t.after(() => fake.close());
    const r = await runBench({ port: fake.port, connections: 4, pipeline: 4, duration: 0.5, warmup: 0 });
    assert.ok(fake.counts.corrupted > 10);
    assert.equal(fake.counts.requests, r.requests.sent);
    assert.equal(r.errors.mismatch, fake.counts.corrupted);
    assert.equal(r.errors.total, fake.counts.corrupted);
    assert.equal(r.requests.ok, r.requests.sent - fake.counts.corrupted);
  });

  test('TCP with UTF-8 payloads: every 5th reply corrupted → exact count', async (t) => {
    const fake = await corruptingTcpServer(100, 5);
    t.after(() => fake.close());
    const r = await runBench({ port: fake.port, connections: 2, pipeline: 3, size: 100, payload: 'utf8', duration: 0.4, warmup: 0 });
    assert.ok(fake.counts.corrupted > 5);
    assert.equal(r.errors.mismatch, fake.counts.corrupted);
    assert.equal(r.errors.total, fake.counts.corrupted);
  });

  test('UDP: every 9th datagram dropped and every 5th reply corrupted → exact timeouts and mismatches', async (t) => {
    const fake = await lossyUdpServer(9, 5);
    t.after(() => fake.close());
    const r = await runBench({ transport: 'udp', port: fake.port, pipeline: 8, duration: 0.6, warmup: 0, timeout: 0.1 });
    assert.ok(fake.counts.dropped > 5);
    assert.equal(fake.counts.received, r.requests.sent);
    assert.equal(r.errors.timeout, fake.counts.dropped);
    assert.equal(r.errors.mismatch, fake.counts.corrupted);
    assert.equal(r.errors.total, fake.counts.dropped + fake.counts.corrupted);
    assert.equal(r.errors.late, 0);
    assert.equal(r.requests.ok, r.requests.sent - fake.counts.dropped - fake.counts.corrupted);
  });

  test('UDP fixed rate: dropped datagrams are exact timeouts too', async (t) => {
    const fake = await lossyUdpServer(4, 1_000_000);
    t.after(() => fake.close());
    // 200 datagrams: fewer than the fake's socket buffer holds, so a machine too busy to
    // read them in time still loses none in the kernel; a 2 s timeout, so only the fake's drops time out.
    const r = await runBench({ transport: 'udp', port: fake.port, rate: 400, duration: 0.5, warmup: 0, timeout: 2 });
    assert.ok(fake.counts.dropped > 20);
    assert.equal(fake.counts.received, r.requests.sent);
    assert.equal(r.errors.timeout, fake.counts.dropped);
    assert.equal(r.errors.total, fake.counts.dropped);
  });

  test('a TCP server that closes with requests in flight: they count as closed', async (t) => {
    const { createServer } = await import('node:net');
    const server = createServer((s) => s.once('data', () => s.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    const r = await runBench({ port, connections: 3, pipeline: 2, duration: 5, warmup: 0 });
    assert.equal(r.endedEarly, true);
    assert.equal(r.errors.closed, 6);
    assert.equal(r.requests.ok, 0);
  });

  test('cannot connect: rejects with UPCASE_ERR_CONNECT', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(runBench({ port, duration: 0.1 }), { code: 'UPCASE_ERR_CONNECT' });
  });
});
