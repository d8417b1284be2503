import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type IdleMemorySample, idleMemoryTargetMet, judgeIdleMemory, rssSettled, summarizeIdleMemory } from '../../src/bench/memory.js';

// 2,000 connections, as `npm run bench -- --quick` opens them.
const sample = (over: Partial<IdleMemorySample>): IdleMemorySample => ({
  requested: 2000,
  open: 2000,
  rssBeforeKb: 60_000,
  rssAfterKb: 64_000,
  settled: true,
  floorKb: 0.25,
  ...over,
});

describe('judgeIdleMemory: a figure only from a plausible measurement', () => {
  test('RSS growth ÷ open connections', () => {
    assert.deepEqual(judgeIdleMemory(sample({})), { ok: true, kbPerConnection: 2 });
  });

  test('negative (RSS shrank: what issue 20 saw, "-4.04 KB each", met: yes) is a failed measurement', () => {
    const v = judgeIdleMemory(sample({ rssAfterKb: 60_000 - 8080 }));
    assert.equal(v.ok, false);
    assert.equal(v.kbPerConnection, -4.04);
    assert.match(!v.ok ? v.reason : '', /-4\.04 KB per connection: RSS did not grow/);
  });

  test('zero fails, unless the server keeps nothing per idle connection (floor 0); negative always fails', () => {
    assert.equal(judgeIdleMemory(sample({ rssAfterKb: 60_000 })).ok, false);
    assert.deepEqual(judgeIdleMemory(sample({ rssAfterKb: 60_000, floorKb: 0 })), { ok: true, kbPerConnection: 0 });
    assert.equal(judgeIdleMemory(sample({ rssAfterKb: 59_996, floorKb: 0 })).ok, false);
  });

  test('below the floor a connection must cost is noise', () => {
    const v = judgeIdleMemory(sample({ rssAfterKb: 60_200 })); // 0.1 KB each
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.reason : '', /below the 0\.25 KB a connection must cost/);
  });

  test('fewer connections open than requested fail, whatever the figure', () => {
    const v = judgeIdleMemory(sample({ open: 1999 }));
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.reason : '', /only 1999 of 2000 connections were open/);
    assert.equal(judgeIdleMemory(sample({ open: 0 })).ok, false);
  });

  test('RSS growth below what the JS heap grew beyond its free space is noise', () => {
    // 4,000 KiB of RSS, but the heap grew by 6,000 KiB with only 1,000 KiB free before.
    const v = judgeIdleMemory(sample({ heap: { growthKb: 6_000, freeBeforeKb: 1_000 } }));
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.reason : '', /less than the JS heap's/);
    // The same growth fits in the free space it had, or exceeds RSS only by the tolerance: a figure.
    assert.equal(judgeIdleMemory(sample({ heap: { growthKb: 6_000, freeBeforeKb: 2_500 } })).ok, true);
    assert.equal(judgeIdleMemory(sample({ heap: { growthKb: 4_200, freeBeforeKb: 0 } })).ok, true);
  });

  test('an RSS that did not settle fails', () => {
    assert.deepEqual(judgeIdleMemory(sample({ settled: false })), { ok: false, kbPerConnection: 2, reason: 'RSS did not settle' });
  });
});

test('rssSettled: the last samples agree within the tolerance', () => {
  assert.equal(rssSettled([100, 200, 300], 5, 64), false, 'too few samples');
  assert.equal(rssSettled([900, 100, 110, 120, 130, 140], 5, 64), true);
  assert.equal(rssSettled([100, 110, 120, 130, 200], 5, 64), false);
});

describe('summarizeIdleMemory and idleMemoryTargetMet', () => {
  const ok = (kb: number) => ({ ok: true as const, kbPerConnection: kb });
  const failed = { ok: false as const, kbPerConnection: -4.04, reason: 'noise' };

  test('median and range of the valid rounds, failures listed', () => {
    assert.deepEqual(summarizeIdleMemory([ok(2.5), ok(2.1), failed, ok(2.3)]), {
      median: 2.3,
      min: 2.1,
      max: 2.5,
      rounds: 4,
      failures: ['noise'],
    });
  });

  test('a target is never met with a failed round, or with none', () => {
    const under = (kb: number) => kb <= 3;
    assert.equal(idleMemoryTargetMet([summarizeIdleMemory([ok(2.1), ok(2.2)])], under), true);
    assert.equal(idleMemoryTargetMet([summarizeIdleMemory([ok(2.1), failed])], under), false);
    assert.equal(idleMemoryTargetMet([summarizeIdleMemory([failed])], under), false);
    assert.equal(idleMemoryTargetMet([summarizeIdleMemory([])], under), false);
    assert.equal(idleMemoryTargetMet([summarizeIdleMemory([ok(3.2)])], under), false);
  });

  test('comparisons take every server named', () => {
    const a = summarizeIdleMemory([ok(1.5)]);
    const b = summarizeIdleMemory([ok(1.6)]);
    assert.equal(
      idleMemoryTargetMet([a, b], (x, y) => x! <= y!),
      true,
    );
    assert.equal(
      idleMemoryTargetMet([b, a], (x, y) => x! <= y!),
      false,
    );
    assert.equal(
      idleMemoryTargetMet([a, summarizeIdleMemory([failed])], (x, y) => x! <= y!),
      false,
    );
  });
});
