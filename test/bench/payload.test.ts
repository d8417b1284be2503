import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { test } from 'node:test';
import { renderSvg } from '../../src/bench/chart.js';
import { makeBody, makePayloads, readSeq, writeSeq, SEQ_DIGITS } from '../../src/bench/payload.js';
import { upcase } from '../../src/codec/upcase.js';
import { BENCH_OPTIONS } from '../../src/bench/options.js';

test('bodies have the exact size, whole UTF-8 characters, and ~30% non-ASCII characters for utf8', () => {
  for (const size of [1, 2, 3, 7, 64, 1000]) {
    for (const kind of ['ascii', 'utf8'] as const) {
      const body = makeBody(kind, size, 3);
      assert.equal(body.length, size);
      assert.ok(isUtf8(body));
      if (kind === 'ascii') assert.ok(body.every((b) => b < 0x80));
    }
  }
  const chars = [...makeBody('utf8', 100_000, 1).toString('utf8')];
  const share = chars.filter((c) => c.codePointAt(0)! >= 0x80).length / chars.length;
  assert.ok(share > 0.25 && share < 0.35, String(share));
});

test('expected replies are the codec uppercase, and concatenation commutes with it', () => {
  const { bodies, expected } = makePayloads('utf8', 50, 4);
  assert.equal(bodies.length, 4);
  assert.deepEqual(expected[2], upcase(bodies[2]!));
  assert.deepEqual(Buffer.concat(expected), upcase(Buffer.concat(bodies)));
  assert.notDeepEqual(bodies[0], bodies[1]);
});

test('sequence numbers round-trip as digits, which uppercasing leaves alone', () => {
  const buf = Buffer.alloc(SEQ_DIGITS + 2, 0x61);
  for (const seq of [0, 7, 1234567890, 9_999_999_999]) {
    writeSeq(buf, 1, seq);
    assert.equal(readSeq(buf, 1), seq);
    assert.equal(readSeq(upcase(buf), 1), seq);
  }
  assert.equal(readSeq(Buffer.from('12345x7890'), 0), -1);
  assert.equal(readSeq(Buffer.from('123'), 0), -1);
});

test('durations and sizes parse with units', () => {
  const duration = (text: string): number => BENCH_OPTIONS.duration.kind.check('duration', BENCH_OPTIONS.duration.kind.fromText(text));
  const size = (text: string): number => BENCH_OPTIONS.size.kind.check('size', BENCH_OPTIONS.size.kind.fromText(text));
  assert.equal(duration('10'), 10);
  assert.equal(duration('500ms'), 0.5);
  assert.equal(duration('2m'), 120);
  assert.equal(size('64'), 64);
  assert.equal(size('1k'), 1024);
  assert.equal(size('2MiB'), 2 * 1024 * 1024);
  assert.throws(() => duration('1 fortnight'), /got `1 fortnight`/);
  assert.throws(() => size('1g'), /got `1g`/);
});

test('the SVG chart escapes text and plots the percentile axis in decades', () => {
  const svg = renderSvg({
    transport: 'tcp',
    engine: { name: 'js', reason: 'engine js was asked for' },
    tls: false,
    host: '<h>',
    port: 1,
    mode: 'closed-loop',
    connections: 1,
    pipeline: 1,
    size: 64,
    payload: 'ascii',
    rate: null,
    warmup: 0,
    timeout: 1,
    duration: 2,
    endedEarly: false,
    window: { start: 0, end: 2000 },
    throughput: { requestsPerSec: 10, mbPerSec: 0, sentBytesPerSec: 640, receivedBytesPerSec: 640 },
    latency: { unit: 'us', count: 1000, min: 1, mean: 2, stdev: 1, p50: 2, p90: 3, p99: 4, p99_9: 5, max: 6 },
    histogram: { unit: 'ns', significantDigits: 3, min: 1000, max: 6000, encoded: '' },
    requests: { sent: 20, ok: 20, measured: 20 },
    errors: { total: 0, mismatch: 0, timeout: 0, closed: 0, unexpected: 0, socket: 0, late: 0 },
    cpu: { userSec: 0, systemSec: 0, percentOfOneCore: 1, loadThreads: [1] },
    timeline: [
      { t: 1, requestsPerSec: 10, mbPerSec: 0, errors: 0, p50: 2, p99: 4 },
      { t: 2, requestsPerSec: 10, mbPerSec: 0, errors: 1, p50: 2, p99: 4 },
    ],
    percentiles: [
      { percentile: 0, value: 1 },
      { percentile: 90, value: 3 },
      { percentile: 99, value: 4 },
      { percentile: 100, value: 6 },
    ],
  });
  assert.match(svg, /&lt;h&gt;/);
  assert.doesNotMatch(svg, /<h>/);
  for (const label of ['>0%<', '>90%<', '>99%<', '>99.9%<']) assert.ok(svg.includes(label), label);
  assert.match(svg, /fill="#d62728"/); // the second with an error is marked
});
