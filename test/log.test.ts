import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimitedLog, safeAddress } from '../src/log.js';
import { captureLogger } from './helpers/logs.js';
import { until } from './helpers/wait.js';

describe('RateLimitedLog', () => {
  test('a flood gives one line at once and one summary with the suppressed count', () => {
    const { logger, lines } = captureLogger();
    let now = 0;
    const log = new RateLimitedLog(logger, 10_000, () => now);
    for (let i = 0; i < 1000; i++) log.warn('k', { n: i }, 'refused');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.suppressed, undefined);
    assert.equal(lines[0]!.n, 0);
    now = 5_000;
    log.flush();
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.suppressed, 999);
    assert.equal(lines[1]!.msg, 'refused');
    log.flush(); // nothing pending any more
    assert.equal(lines.length, 2);
  });

  test('the summary comes by itself when the window ends, so the count is not lost', async () => {
    const { logger, lines } = captureLogger();
    const log = new RateLimitedLog(logger, 50);
    for (let i = 0; i < 10; i++) log.warn('k', {}, 'dropped');
    assert.equal(lines.length, 1);
    await until(() => lines.length >= 2, 'the summary line', 5000, 10);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.suppressed, 9);
  });

  test('under a sustained flood every warning is accounted for, in a few lines', () => {
    const { logger, lines } = captureLogger();
    let now = 0;
    const log = new RateLimitedLog(logger, 100, () => now);
    const total = 1000;
    for (let i = 0; i < total; i++) {
      log.warn('k', {}, 'dropped');
      now += 1;
    }
    log.flush();
    // A line without `suppressed` is a warning itself; a summary stands for the ones it counts.
    const accounted = lines.reduce((sum, l) => sum + ((l.suppressed as number | undefined) ?? 1), 0);
    assert.equal(accounted, total);
    assert.ok(lines.length <= 2 * (total / 100) + 2, `${lines.length} lines for ${total} warnings`);
  });

  test('keys are limited separately', () => {
    const { logger, lines } = captureLogger();
    const log = new RateLimitedLog(logger, 10_000, () => 0);
    log.warn('a', {}, 'a');
    log.warn('b', {}, 'b');
    log.warn('a', {}, 'a');
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['a', 'b'],
    );
  });
});

test('safeAddress passes addresses and quotes anything odd', () => {
  assert.equal(safeAddress('::ffff:127.0.0.1'), '::ffff:127.0.0.1');
  assert.equal(safeAddress('fe80::1%eth0'), 'fe80::1%eth0');
  assert.equal(safeAddress('evil\n{"level":60}'), JSON.stringify('evil\n{"level":60}'));
  assert.equal(safeAddress(undefined), undefined);
});
