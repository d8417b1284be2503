import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'hdr-histogram-js';
import { nativeBenchStatus, readNativeBenchConstants } from '../../src/bench/addon.js';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import type { BenchEngine } from '../../src/bench/options.js';
import { type BenchResult, runBench } from '../../src/bench/run.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { deadUdpPort } from '../helpers/programs.js';
import { runCli } from '../helpers/cli.js';
import { ipv6LoopbackAvailable } from '../helpers/roundtrip.js';
import { corruptingTcpServer, lossyUdpServer, noisyUdpServer, shortReplyTcpServer } from './fakes.js';

// The contract of the two bench engines (src/bench/tcp.ts + udp.ts, and native/bench_engine.c):
// every case runs on each, against upcase and against servers that misbehave in known ways,
// and each must count exactly what the server did. The native engine exists on Linux only.
const native = nativeBenchStatus();
const ENGINES: Array<{ engine: Exclude<BenchEngine, 'auto'>; skip: string | false }> = [
  { engine: 'js', skip: false },
  { engine: 'native', skip: native.binding === null ? `the native bench engine is not built here (${native.unavailable?.detail})` : false },
];

/** What every result must hold, whatever the server did: percentiles within [min, max], the histogram exactly the window's replies. */
async function wellFormed(r: BenchResult, engine: string): Promise<void> {
  assert.equal(r.engine.name, engine);
  const l = r.latency;
  assert.equal(l.count, r.requests.measured);
  if (l.count > 0) {
    for (const k of ['p50', 'p90', 'p99', 'p99_9'] as const)
      assert.ok(l[k]! >= l.min! && l[k]! <= l.max!, `${k} ${l[k]} in [${l.min}, ${l.max}]`);
    assert.ok(r.percentiles.every((p) => p.value <= l.max! && p.value >= l.min!));
  }
  const h = await LatencyHistogram.decode(r.histogram);
  try {
    assert.equal(h.count, r.requests.measured);
    assert.deepEqual({ unit: 'us', ...h.summary() }, l);
  } finally {
    h.destroy();
  }
}

for (const { engine, skip } of ENGINES) {
  describe(`bench engine ${engine}`, { skip }, () => {
    let server: UpcaseServer;
    let port: number;
    before(async () => {
      server = await startServer({ host: '127.0.0.1', port: 0, udpRateLimit: 0 });
      port = server.address().port;
    });
    after(() => server.close());

    test('against upcase, TCP pipelined with UTF-8 requests: every reply right, none lost', async () => {
      const r = await runBench({
        engine,
        port,
        host: '127.0.0.1',
        connections: 4,
        pipeline: 8,
        size: 200,
        payload: 'utf8',
        duration: 0.5,
        warmup: 0.2,
      });
      assert.ok(r.requests.measured > 0);
      assert.deepEqual(r.errors, { total: 0, mismatch: 0, timeout: 0, closed: 0, unexpected: 0, socket: 0, late: 0 });
      assert.equal(r.requests.ok, r.requests.sent);
      // ß → SS and friends: replies are longer than requests, and counted as they came.
      assert.ok(r.throughput.receivedBytesPerSec > r.throughput.sentBytesPerSec);
      await wellFormed(r, engine);
    });

    test('against upcase, UDP with 16 in flight: every reply right, none lost', async () => {
      const r = await runBench({
        engine,
        transport: 'udp',
        port,
        host: '127.0.0.1',
        pipeline: 16,
        payload: 'utf8',
        duration: 0.5,
        warmup: 0.2,
      });
      assert.ok(r.requests.measured > 0);
      assert.equal(r.errors.total, 0);
      assert.equal(r.requests.ok, r.requests.sent);
      await wellFormed(r, engine);
    });

    test('wrong bytes: every 7th TCP reply corrupted → exactly that many mismatches', async (t) => {
      const fake = await corruptingTcpServer(64, 7);
      t.after(() => fake.close());
      const r = await runBench({ engine, port: fake.port, host: '127.0.0.1', connections: 4, pipeline: 4, duration: 0.5, warmup: 0 });
      assert.ok(fake.counts.corrupted > 10);
      assert.equal(r.requests.sent, fake.counts.requests);
      assert.equal(r.errors.mismatch, fake.counts.corrupted);
      assert.equal(r.errors.total, fake.counts.corrupted);
      assert.equal(r.requests.ok, r.requests.sent - fake.counts.corrupted);
      await wellFormed(r, engine);
    });

    test('short reply: the rest never comes → one timeout per connection, the run ends early', async (t) => {
      const fake = await shortReplyTcpServer(64, 40, false);
      t.after(() => fake.close());
      const r = await runBench({
        engine,
        port: fake.port,
        host: '127.0.0.1',
        connections: 3,
        pipeline: 1,
        duration: 5,
        warmup: 0,
        timeout: 0.3,
      });
      assert.equal(r.endedEarly, true);
      assert.equal(r.requests.sent, 3);
      assert.deepEqual(r.errors, { total: 3, mismatch: 0, timeout: 3, closed: 0, unexpected: 0, socket: 0, late: 0 });
      assert.equal(r.latency.count, 0);
      await wellFormed(r, engine);
    });

    test('close mid-reply: the requests in flight count as closed', async (t) => {
      const fake = await shortReplyTcpServer(64, 32, true);
      t.after(() => fake.close());
      const r = await runBench({ engine, port: fake.port, host: '127.0.0.1', connections: 3, pipeline: 2, duration: 5, warmup: 0 });
      assert.equal(r.endedEarly, true);
      assert.equal(r.requests.sent, 6);
      assert.deepEqual(r.errors, { total: 6, mismatch: 0, timeout: 0, closed: 6, unexpected: 0, socket: 0, late: 0 });
      await wellFormed(r, engine);
    });

    test('no reply at all: every request in flight times out', async (t) => {
      const silent = net.createServer((s) => s.on('error', () => {}));
      const sockets = new Set<net.Socket>();
      silent.on('connection', (s) => sockets.add(s));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      t.after(() => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((resolve) => silent.close(() => resolve()));
      });
      const silentPort = (silent.address() as net.AddressInfo).port;
      const r = await runBench({
        engine,
        port: silentPort,
        host: '127.0.0.1',
        connections: 2,
        pipeline: 3,
        duration: 5,
        warmup: 0,
        timeout: 0.3,
      });
      assert.equal(r.endedEarly, true);
      assert.deepEqual(r.errors, { total: 6, mismatch: 0, timeout: 6, closed: 0, unexpected: 0, socket: 0, late: 0 });
      assert.equal(r.latency.count, 0);
      assert.equal(r.latency.p50, null);
    });

    test('UDP: every 9th datagram dropped and every 5th reply corrupted → exact timeouts and mismatches', async (t) => {
      const fake = await lossyUdpServer(9, 5);
      t.after(() => fake.close());
      const r = await runBench({
        engine,
        transport: 'udp',
        port: fake.port,
        host: '127.0.0.1',
        pipeline: 8,
        duration: 1,
        warmup: 0,
        // Well above any reply's delay on a loaded machine (or under the sanitizers): a slow reply is not a drop.
        timeout: 0.4,
      });
      assert.ok(fake.counts.dropped > 5);
      assert.equal(r.requests.sent, fake.counts.received);
      assert.equal(r.errors.timeout, fake.counts.dropped);
      assert.equal(r.errors.mismatch, fake.counts.corrupted);
      assert.equal(r.errors.total, fake.counts.dropped + fake.counts.corrupted);
      assert.equal(r.errors.late, 0);
      await wellFormed(r, engine);
    });

    test('UDP: datagrams that answer nothing are unexpected, duplicate replies are late', async (t) => {
      const fake = await noisyUdpServer(10, 7);
      t.after(() => fake.close());
      const r = await runBench({
        engine,
        transport: 'udp',
        port: fake.port,
        host: '127.0.0.1',
        pipeline: 4,
        duration: 0.5,
        warmup: 0,
        timeout: 1,
      });
      assert.ok(fake.counts.junk > 5 && fake.counts.duplicated > 5);
      assert.equal(r.requests.sent, fake.counts.received);
      assert.equal(r.errors.unexpected, fake.counts.junk);
      assert.equal(r.errors.late, fake.counts.duplicated);
      assert.equal(r.errors.total, fake.counts.junk);
      assert.equal(r.requests.ok, r.requests.sent);
      await wellFormed(r, engine);
    });

    test('UDP to a closed port: ICMP port unreachable counts as socket errors, and no latency figures', async () => {
      const dead = await deadUdpPort();
      const r = await runBench({
        engine,
        transport: 'udp',
        port: dead,
        host: '127.0.0.1',
        pipeline: 16,
        duration: 0.4,
        warmup: 0,
        timeout: 0.2,
      });
      assert.equal(r.requests.ok, 0);
      assert.ok(r.errors.socket > 0);
      assert.ok(r.errors.socket > r.errors.timeout, JSON.stringify(r.errors));
      assert.equal(r.errors.socket + r.errors.timeout, r.requests.sent);
      assert.equal(r.errors.total, r.errors.socket + r.errors.timeout);
      assert.equal(r.latency.count, 0);
      assert.deepEqual(r.percentiles, []);
    });

    test('over IPv6 loopback (::1), TCP and UDP: every reply right', async (t) => {
      if (!(await ipv6LoopbackAvailable())) return t.skip('no IPv6 loopback here');
      const v6 = await startServer({ host: '::1', port: 0, udpRateLimit: 0 });
      t.after(() => v6.close());
      const v6port = v6.address().port;
      for (const transport of ['tcp', 'udp'] as const) {
        const r = await runBench({ engine, transport, host: '::1', port: v6port, connections: 2, pipeline: 4, duration: 0.3, warmup: 0 });
        assert.ok(r.requests.measured > 0, transport);
        assert.equal(r.errors.total, 0, transport);
        await wellFormed(r, engine);
      }
    });

    test('cannot connect over TCP: rejects with UPCASE_ERR_CONNECT', async () => {
      const closed = net.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const closedPort = (closed.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      await assert.rejects(runBench({ engine, port: closedPort, host: '127.0.0.1', duration: 0.1 }), { code: 'UPCASE_ERR_CONNECT' });
    });
  });
}

describe('the native engine as an addon', { skip: ENGINES[1]!.skip }, () => {
  test('its latency buckets are hdr-histogram-js buckets: the value it reports is the bucket start of the value recorded', () => {
    const binding = native.binding!.binding;
    const h = build({
      bitBucketSize: 32,
      autoResize: false,
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000_000_000,
      numberOfSignificantValueDigits: 3,
      useWebAssembly: false,
    }) as unknown as { lowestEquivalentValue(v: number): number };
    const values = [1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 65_535, 1_000_000, 123_456_789, 3_599_999_999_999, 3_600_000_000_000];
    for (let i = 0; i < 2000; i++) values.push(Math.floor(Math.exp(Math.random() * Math.log(3.6e12))));
    for (const v of values) assert.equal(binding.bucketStart(v), h.lowestEquivalentValue(v), `value ${v}`);
    // Clamped as the JavaScript engine clamps: 0 to 1 ns, past an hour to an hour.
    assert.equal(binding.bucketStart(0), 1);
    assert.equal(binding.bucketStart(4e12), h.lowestEquivalentValue(3_600_000_000_000));
  });

  test('its constants are read by name: one missing or doubled is named', () => {
    const good = native.binding!.binding;
    assert.doesNotThrow(() => readNativeBenchConstants(good));
    const { ok: _, ...noOk } = good.counters as Record<string, number>;
    assert.throws(() => readNativeBenchConstants({ ...good, counters: noOk }), /`counters\.ok` is missing/);
    const states = { ...(good.states as Record<string, number>), done: (good.states as Record<string, number>).ready };
    assert.throws(() => readNativeBenchConstants({ ...good, states }), /`states\.done` and `states\.ready` are both/);
  });
});

describe('choosing the engine (upcase bench)', () => {
  let server: UpcaseServer;
  let port: number;
  let empty: string;
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, udpRateLimit: 0 });
    port = server.address().port;
    empty = mkdtempSync(join(tmpdir(), 'upcase-no-addons-'));
  });
  after(async () => {
    await server.close();
    rmSync(empty, { recursive: true, force: true });
  });
  const args = (...more: string[]): string[] => [
    'bench',
    '-H',
    '127.0.0.1',
    '-p',
    String(port),
    '-c',
    '2',
    '-d',
    '0.3',
    '--warmup',
    '0',
    ...more,
  ];

  test('without the addon (UPCASE_NATIVE_DIR empty): auto runs the JavaScript engine and says why', async () => {
    const r = await runCli(args('--json'), { env: { UPCASE_NATIVE_DIR: empty } });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as BenchResult;
    assert.equal(result.engine.name, 'js');
    assert.match(result.engine.reason, /^the native engine is not built \(no such file in .*\); run `npm rebuild upcase`/);
    assert.equal(result.errors.total, 0);
    const human = await runCli(args(), { env: { UPCASE_NATIVE_DIR: empty } });
    assert.match(human.stdout, /\n {2}engine {6}js \(the native engine is not built/);
  });

  test('without the addon, --engine native is a usage error that says the fix', async () => {
    const r = await runCli(args('--engine', 'native'), { env: { UPCASE_NATIVE_DIR: empty } });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^upcase bench: --engine: expected auto or js here: the native bench engine is not built \(no such file in .*\); run npm rebuild upcase \(it says what fails\), got native\n$/,
    );
    assert.equal(r.stdout, '');
  });

  test('--rate runs on the JavaScript engine under auto and says so; --engine native refuses it', async () => {
    const r = await runCli(args('--rate', '200', '--json'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as BenchResult).engine, {
      name: 'js',
      reason: 'the native engine does not run fixed-rate load (`rate`)',
    });
    const refused = await runCli(args('--rate', '200', '--engine', 'native'));
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr,
      'upcase bench: --engine: expected auto or js: the native bench engine does not run fixed-rate load (--rate), got native\n',
    );
  });

  test('where it is built, auto runs the native engine: one load thread, its busy share named', { skip: ENGINES[1]!.skip }, async () => {
    const r = await runCli(args());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n {2}client CPU .*% of one core; native engine thread busy \d+%/);
    assert.match(r.stdout, /\n {2}engine {6}native \(the native engine is built and runs this workload\)\n$/);
  });
});
