import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { looksRateLimited, Pinger, type PingReply, pingPayload, type PingSummary, replySeq, RttStats } from '../../src/client/ping.js';
import { upcase } from '../../src/codec/upcase.js';
import { deadUdpPort, fakeUdpServer } from '../helpers/programs.js';
import { suiteServer } from '../helpers/serve.js';
import { delay } from '../helpers/wait.js';

describe('ping statistics', () => {
  test("mdev is ping(8)'s: sqrt(mean(rtt²) − mean(rtt)²)", () => {
    const rtts = [0.5, 1.25, 3, 0.75, 2];
    const stats = new RttStats();
    for (const r of rtts) stats.add(r);
    const mean = rtts.reduce((a, b) => a + b, 0) / rtts.length;
    const meanOfSquares = rtts.reduce((a, b) => a + b * b, 0) / rtts.length;
    assert.equal(stats.min, 0.5);
    assert.equal(stats.max, 3);
    assert.ok(Math.abs(stats.avg - 1.5) < 1e-12);
    assert.ok(Math.abs(stats.mdev - Math.sqrt(meanOfSquares - mean * mean)) < 1e-12);
    assert.ok(Math.abs(stats.mdev - 0.9082951062292476) < 1e-12);
  });

  test('payload: "Ping <seq> <time>" padded to the size; the uppercase reply gives the seq back', () => {
    const p = pingPayload(42, 56, 1_700_000_000_123);
    assert.equal(p.length, 56);
    assert.equal(p.toString(), `Ping 42 1700000000123 ${'x'.repeat(56 - 22)}`);
    assert.equal(replySeq(upcase(p)), 42);
    assert.equal(pingPayload(4_294_967_295, 32).length, 32);
    assert.equal(replySeq(Buffer.from('PONG 1')), null);
    assert.equal(replySeq(Buffer.from('PING 12X')), null);
  });

  test('rate-limit heuristic: a clean start then heavy loss, at speed', () => {
    const base: PingSummary = {
      transmitted: 100,
      received: 40,
      errors: 0,
      loss: 60,
      time: 200,
      rtt: null,
      ipdv: null,
      lost: 60,
      late: 0,
      duplicates: 0,
      reordered: 0,
      unexpected: 0,
      firstLoss: 41,
      lostAfterFirstLoss: 60,
    };
    assert.equal(looksRateLimited(base, 0.002), true);
    assert.equal(looksRateLimited(base, 1), false, 'slow pings');
    assert.equal(
      looksRateLimited({ ...base, firstLoss: 3, received: 70, lostAfterFirstLoss: 30 }, 0.002),
      false,
      'random loss from the start',
    );
    assert.equal(looksRateLimited({ ...base, firstLoss: null, received: 100, lostAfterFirstLoss: 0 }, 0.002), false, 'no loss');
  });
});

describe('Pinger', () => {
  const shared = suiteServer({ tcp: false });

  test('count pings, one reply each, summary with no loss', async () => {
    const pinger = new Pinger({ host: '127.0.0.1', port: shared.port, count: 4, interval: 0.01, size: 100 });
    const replies: PingReply[] = [];
    pinger.on('reply', (r) => replies.push(r));
    const summary = await pinger.run();
    assert.deepEqual(replies.map((r) => r.seq).sort(), [1, 2, 3, 4]);
    for (const r of replies) {
      assert.equal(r.bytes, 100);
      assert.equal(r.address, '127.0.0.1');
      assert.equal(r.port, shared.port);
      assert.ok(r.rtt > 0);
    }
    assert.equal(summary.transmitted, 4);
    assert.equal(summary.received, 4);
    assert.equal(summary.loss, 0);
    assert.ok(summary.rtt !== null && summary.rtt.min <= summary.rtt.avg && summary.rtt.avg <= summary.rtt.max);
  });

  test('a lost ping times out; replies are matched by seq, not by order', async (t) => {
    // Seq 2 is lost; seq 1 is answered only after seq 3.
    let first: { msg: Buffer; port: number } | null = null;
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      const seq = replySeq(msg)!;
      if (seq === 1) first = { msg, port: rinfo.port };
      if (seq === 3) {
        socket.send(upcase(msg), rinfo.port, rinfo.address);
        socket.send(upcase(first!.msg), first!.port, rinfo.address);
      }
    });
    t.after(() => fake.close());
    const pinger = new Pinger({ host: '127.0.0.1', port: fake.port, count: 3, interval: 0.005, timeout: 0.8 });
    const events: string[] = [];
    pinger.on('reply', (r) => events.push(`reply ${r.seq}`));
    pinger.on('timeout', (seq) => events.push(`timeout ${seq}`));
    const summary = await pinger.run();
    assert.deepEqual(events, ['reply 3', 'reply 1', 'timeout 2']);
    assert.equal(summary.transmitted, 3);
    assert.equal(summary.received, 2);
    assert.ok(Math.abs(summary.loss - 100 / 3) < 1e-9);
    assert.equal(summary.firstLoss, 2);
  });

  test('stop() ends an endless run at once with the summary', async () => {
    const pinger = new Pinger({ host: '127.0.0.1', port: shared.port, count: 0, interval: 0.01 });
    let replies = 0;
    pinger.on('reply', () => {
      if (++replies === 3) pinger.stop();
    });
    const summary = await pinger.run();
    assert.equal(summary.received, 3);
    assert.ok(summary.transmitted >= 3);
  });

  test('nothing listening: each ping fails as port unreachable', async () => {
    const dead = await deadUdpPort();
    // Linux rate-limits ICMP machine-wide (net.ipv4.icmp_msgs_per_sec), and other tests flood closed
    // ports: a run whose ICMP reports were dropped (a probe timed out) is tried again, a few times.
    const ping = async () => {
      const pinger = new Pinger({ host: '127.0.0.1', port: dead, count: 2, interval: 0.01, timeout: 2 });
      const failures: string[] = [];
      pinger.on('failure', (f) => failures.push(`${f.seq} ${f.error.code} ${f.error.syscallCode}`));
      return { summary: await pinger.run(), failures };
    };
    let { summary, failures } = await ping();
    for (let tries = 1; tries < 5 && summary.errors < 2; tries++) {
      await delay(500);
      ({ summary, failures } = await ping());
    }
    assert.deepEqual(failures, ['1 UPCASE_ERR_CONNECT ECONNREFUSED', '2 UPCASE_ERR_CONNECT ECONNREFUSED']);
    assert.equal(summary.errors, 2);
    assert.equal(summary.received, 0);
    assert.equal(summary.loss, 100);
    assert.equal(summary.rtt, null);
  });

  test('options are validated', () => {
    assert.throws(() => new Pinger({ size: 31 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`size`.*from 32 to 65507/ });
    assert.throws(() => new Pinger({ interval: 0 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`interval`/ });
    assert.throws(() => new Pinger({ count: -1 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`count`/ });
  });
});
