// The C/TypeScript contract of the native addons: every constant TypeScript needs
// (close reasons, counter indices, the UDP slot layout) is exported by name, with
// distinct values, and an addon that does not match is refused with a reason.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { readNamedInts } from '../src/addons.js';
import { NATIVE_TCP_CLOSE_REASONS, NATIVE_TCP_COUNTERS, readNativeTcpConstants } from '../src/tcp/native.js';
import { NATIVE_UDP_META, readNativeUdpMeta } from '../src/udp/native.js';

const require = createRequire(import.meta.url);

/** The addon as built, or a failed assertion: npm ci builds both on Linux. */
function built(name: 'upcase_tcp' | 'upcase_udp'): Record<string, unknown> {
  assert.equal(process.platform, 'linux', 'the native addons are Linux-only');
  try {
    return require(`../build/Release/${name}.node`) as Record<string, unknown>;
  } catch (err) {
    assert.fail(`build/Release/${name}.node is missing (run \`npm run build:native\`): ${(err as Error).message}`);
  }
}

function assertDistinct(table: Record<string, number>, names: readonly string[]): void {
  const values = names.map((n) => table[n]);
  for (const [i, v] of values.entries()) assert.ok(Number.isInteger(v) && v! >= 0, `${names[i]} is ${v}`);
  assert.equal(new Set(values).size, values.length, `values not distinct: ${JSON.stringify(table)}`);
}

describe('the TCP addon exports its constants by name', () => {
  test('every close reason TypeScript reads, with distinct numbers', () => {
    const reasons = built('upcase_tcp').closeReasons as Record<string, number>;
    assert.deepEqual(Object.keys(reasons).sort(), [...NATIVE_TCP_CLOSE_REASONS].sort());
    assertDistinct(reasons, NATIVE_TCP_CLOSE_REASONS);
  });

  test('every counter TypeScript reads, with distinct indices below counters.length', () => {
    const counters = built('upcase_tcp').counters as Record<string, number>;
    assertDistinct(counters, NATIVE_TCP_COUNTERS);
    for (const name of NATIVE_TCP_COUNTERS) assert.ok(counters[name]! < counters.length!, name);
    const constants = readNativeTcpConstants(built('upcase_tcp') as never);
    assert.equal(constants.counterCount, counters.length);
    for (const name of NATIVE_TCP_CLOSE_REASONS)
      assert.equal(constants.reasonByNumber[(built('upcase_tcp').closeReasons as Record<string, number>)[name]!], name);
  });
});

describe('the UDP addon exports its slot layout by name', () => {
  test('every field TypeScript reads, with distinct indices below udpMeta.fields', () => {
    const meta = built('upcase_udp').udpMeta as Record<string, number>;
    const fields = ['length', 'sourcePort', 'family', 'replyLength'];
    assertDistinct(meta, fields);
    for (const name of fields) assert.ok(meta[name]! < meta.fields!, name);
    assert.deepEqual(Object.keys(meta).sort(), [...NATIVE_UDP_META].sort());
    assert.deepEqual(readNativeUdpMeta(built('upcase_udp') as never), meta);
  });
});

describe('an addon that does not match the TypeScript is refused with a reason', () => {
  const good = { end: 0, idle: 1, stall: 2, error: 3, destroyed: 4 };
  const counters = { bytesIn: 0, bytesOut: 1, idleTimeouts: 2, writeTimeouts: 3, length: 4 };

  test('a missing name', () => {
    const { stall: _, ...noStall } = good;
    assert.throws(() => readNativeTcpConstants({ closeReasons: noStall, counters }), /`closeReasons.stall` is missing/);
    assert.throws(() => readNativeTcpConstants({ closeReasons: good, counters: undefined }), /exports no `counters`/);
  });

  test('two names with one value', () => {
    assert.throws(
      () => readNativeTcpConstants({ closeReasons: { ...good, idle: 2 }, counters }),
      /`closeReasons.stall` and `closeReasons.idle` are both 2/,
    );
  });

  test('an index past the array, or no length', () => {
    assert.throws(
      () => readNativeTcpConstants({ closeReasons: good, counters: { ...counters, writeTimeouts: 4 } }),
      /past `counters.length` 4/,
    );
    const { length: _, ...noLength } = counters;
    assert.throws(() => readNativeTcpConstants({ closeReasons: good, counters: noLength }), /`counters.length` is missing/);
  });

  test('a UDP layout whose field lies outside its slot', () => {
    const meta = { length: 0, sourcePort: 1, family: 2, replyLength: 5, fields: 4, addressSize: 16 };
    assert.throws(() => readNativeUdpMeta({ udpMeta: meta }), /`udpMeta.replyLength` is 5, past `udpMeta.fields` 4/);
  });

  test('readNamedInts returns the values it checked', () => {
    assert.deepEqual(readNamedInts({ t: { a: 1, b: 0, c: 9 } }, 't', ['a', 'b'] as const), { a: 1, b: 0 });
    assert.throws(() => readNamedInts({ t: { a: 1.5 } }, 't', ['a'] as const), /`t.a` is missing \(got 1.5\)/);
  });
});
