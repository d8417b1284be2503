import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { runCli } from '../helpers/cli.js';
import { deadUdpPort } from '../helpers/programs.js';

/** `upcase bench ...args`, to completion. */
const run = (args: string[]) => runCli(['bench', ...args], { timeoutMs: 20_000 });

describe('upcase bench (CLI)', () => {
  let server: UpcaseServer;
  let port: string;
  let dir: string;
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, udpRateLimit: 0 });
    port = String(server.address().port);
    dir = await mkdtemp(join(tmpdir(), 'upcase-bench-'));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('--json prints exactly one JSON object with the documented fields', async () => {
    const { code, stdout, stderr } = await run(['-p', port, '-c', '4', '-d', '500ms', '--warmup', '0', '--json']);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
    assert.equal(stdout.trim().split('\n').length, 1);
    const r = JSON.parse(stdout);
    for (const key of [
      'transport',
      'host',
      'port',
      'mode',
      'connections',
      'pipeline',
      'size',
      'payload',
      'rate',
      'warmup',
      'timeout',
      'duration',
      'endedEarly',
      'window',
      'histogram',
      'engine',
    ]) {
      assert.ok(key in r, key);
    }
    assert.deepEqual(Object.keys(r.throughput).sort(), ['mbPerSec', 'receivedBytesPerSec', 'requestsPerSec', 'sentBytesPerSec']);
    assert.deepEqual(Object.keys(r.latency).sort(), ['count', 'max', 'mean', 'min', 'p50', 'p90', 'p99', 'p99_9', 'stdev', 'unit']);
    assert.deepEqual(Object.keys(r.errors).sort(), ['closed', 'late', 'mismatch', 'socket', 'timeout', 'total', 'unexpected']);
    assert.deepEqual(Object.keys(r.requests).sort(), ['measured', 'ok', 'sent']);
    assert.deepEqual(Object.keys(r.cpu).sort(), ['loadThreads', 'percentOfOneCore', 'systemSec', 'userSec']);
    // One busy share per load thread: the native engine's one, or the CPUs' (at most one per connection) on the JavaScript engine.
    assert.equal(r.cpu.loadThreads.length, r.engine.name === 'native' ? 1 : Math.min(availableParallelism(), 4));
    assert.ok(Array.isArray(r.timeline) && Array.isArray(r.percentiles));
    assert.equal(r.transport, 'tcp');
    assert.equal(r.connections, 4);
    assert.equal(r.timeout, 10);
    assert.ok(r.throughput.requestsPerSec > 0);
    assert.equal(r.errors.total, 0);
  });

  test('human output on stdout, no progress line when stderr is not a TTY; --report writes SVG, HTML and PNG', async () => {
    const svg = join(dir, 'r.svg');
    const { code, stdout, stderr } = await run(['--udp', '-p', port, '-d', '0.3', '--warmup', '0', '--pipeline', '4', '--report', svg]);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
    assert.match(stdout, /^upcase bench: UDP localhost:\d+, 1 socket\(s\) × 4 in flight, 64 B ascii requests, closed loop\n/);
    assert.match(stdout, /requests +[\d,.]+\/s/);
    assert.match(stdout, /errors +0 /);
    assert.match(stdout, /client CPU/);
    assert.match(await readFile(svg, 'utf8'), /^<svg [^>]*>[\s\S]*Latency by percentile[\s\S]*<\/svg>\n$/);
    for (const [file, check] of [
      [join(dir, 'r.html'), (b: Buffer) => assert.match(b.toString(), /^<!doctype html>[\s\S]*<svg/)],
      [join(dir, 'r.png'), (b: Buffer) => assert.deepEqual([...b.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47])],
    ] as const) {
      const res = await run(['-p', port, '-c', '1', '-d', '0.2', '--warmup', '0', '--report', file]);
      assert.equal(res.code, 0, res.stderr);
      check(await readFile(file));
    }
  });

  test('--interval prints iperf3-style lines, warmup marked, then the result; "no replies" instead of latencies when none came', async () => {
    const { code, stdout, stderr } = await run(['-p', port, '-c', '2', '-d', '1', '--warmup', '0.5', '--interval', '0.5']);
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n');
    const intervals = lines.filter((l) => l.startsWith('['));
    assert.ok(intervals.length >= 3, stdout);
    // (A thread's last warmup interval can be a few ms long, and empty.)
    for (const l of intervals)
      assert.match(
        l,
        /^\[ *\d+\.\d\d-\d+\.\d\d s\] {2}[\d,]+ req\/s {2}(p50 [\d,.]+ µs {2}p99 [\d,.]+ µs|no replies) {2}errors 0( {2}\(warmup\))?$/,
      );
    // A loaded machine runs timers late: the spans start at 0 and last about the interval.
    assert.match(intervals[0]!, /^\[ {2}0\.00-0\.[5-9]\d s\] .*\(warmup\)$/);
    assert.match(intervals.find((l) => !l.endsWith('(warmup)'))!, /^\[ {2}0\.00-0\.[5-9]\d s\] /);
    assert.ok(lines.indexOf(intervals.at(-1)!) < lines.findIndex((l) => l.startsWith('upcase bench:')));

    const udp = await run(['--udp', '-p', port, '-d', '0.3', '--warmup', '0', '--json', '--interval', '0.1']);
    assert.equal(udp.code, 0, udp.stderr);
    assert.equal(udp.stdout.trim().split('\n').length, 1, 'with --json, interval lines go to stderr');
    assert.match(udp.stderr, /^\[ {2}0\.00-0\.\d\d s\] /);

    const dead = await run(['--udp', '-p', String(await deadUdpPort()), '-d', '0.2', '--warmup', '0', '--timeout', '100ms']);
    assert.equal(dead.code, 1);
    assert.match(dead.stdout, /\n {2}latency {5}no replies\n/);
    assert.doesNotMatch(dead.stdout, /p50/);
  });

  test('usage errors exit 2 and name the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--tcp', '--udp'], /^upcase bench: --tcp: expected used only without --udp\n$/],
      [['-c', '0'], /--connections/],
      [['-d', 'soon'], /--duration/],
      [['-s', '10', '--udp'], /size/],
      [['-s', '3 parsecs'], /--size/],
      [['--rate', 'fast'], /--rate/],
      [['--payload', 'latin1'], /--payload/],
      [['--report', 'out.txt'], /report/],
      [['--pipeline', '-1'], /--pipeline/],
      [['--bogus'], /unknown option/],
      [['--interval', '0'], /--interval/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr, stdout } = await run(['-p', port, ...args]);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, message, args.join(' '));
      assert.equal(stdout, '');
    }
  });

  test('exit 1 when it cannot connect, and when replies are lost', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const free = String((probe.address() as { port: number }).port);
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const refused = await run(['-p', free, '-d', '0.2']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot connect to localhost:\d+ \(tcp\)/);

    const silent = await run(['--udp', '-p', free, '-d', '0.2', '--warmup', '0', '--timeout', '100ms', '--json']);
    assert.equal(silent.code, 1);
    const nobody = JSON.parse(silent.stdout);
    // ICMP port unreachable: socket errors, each charged to one request; no latency figures.
    assert.ok(nobody.errors.socket > 0);
    assert.equal(nobody.errors.socket + nobody.errors.timeout, nobody.requests.sent);
    assert.equal(nobody.latency.p99, null);
    assert.match(silent.stderr, /no UDP reply at all from (127\.0\.0\.1|localhost):\d+, and ICMP port unreachable/);

    // The default per-source rate limit of upcase serve drops most of a fast UDP run: errors, exit 1, and a hint.
    const limited = await startServer({ host: '127.0.0.1', port: 0, udpRateLimit: 50, udpRateBurst: 50, tcp: false });
    try {
      const r = await run(['--udp', '-p', String(limited.address().port), '-d', '0.3', '--warmup', '0', '--timeout', '100ms', '--json']);
      assert.equal(r.code, 1);
      const result = JSON.parse(r.stdout);
      assert.ok(result.errors.timeout > 0);
      // Word for word as docs/benchmarks.md quotes it.
      assert.match(
        r.stderr,
        /^upcase: hint: \d+ UDP requests got no reply at about \d+ replies\/s\. If the server is `upcase serve`, its per-source rate limit \(--udp-rate-limit, default 100\/s\) drops the rest: run `upcase serve --udp-rate-limit 0` for benchmarking\.$/m,
      );
    } finally {
      await limited.close();
    }
  });
});
