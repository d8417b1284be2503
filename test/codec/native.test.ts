// The C codec addon (upcase_codec.node) under the TypeScript codec: long non-ASCII pieces
// go to C (NATIVE_MIN_BYTES), with exactly the TypeScript codec's output, and without the
// addon everything runs in TypeScript.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { nativeCodecStatus, nativeUpcaseFunction } from '../../src/codec/native.js';
import { NATIVE_MIN_BYTES, Upcaser, upcase } from '../../src/codec/upcase.js';
import { mostlyWellFormed, splitAt } from '../helpers/arbitraries.js';

const skip = process.env.UPCASE_NATIVE === '0' ? 'UPCASE_NATIVE=0: the codec addon is off' : false;

/** The TypeScript codec alone, the reference. */
function typescript(chunks: readonly Buffer[]): Buffer {
  const codec = new Upcaser({ native: false });
  return Buffer.concat([...chunks.map((c) => codec.push(c)), codec.end()]);
}

/** Counts the calls into the addon while `fn` runs. */
function callsInto(fn: () => void): number {
  const binding = nativeCodecStatus().binding!;
  const original = binding.upcase;
  let calls = 0;
  binding.upcase = (bytes) => {
    calls++;
    return original.call(binding, bytes);
  };
  try {
    fn();
  } finally {
    binding.upcase = original;
  }
  return calls;
}

describe('the codec addon', { skip }, () => {
  test('is built and takes the case tables', () => {
    assert.equal(nativeCodecStatus().unavailable, null, 'build/Release/upcase_codec.node is missing: run `npm run build:native`');
  });

  test(`takes non-ASCII pieces from ${NATIVE_MIN_BYTES} bytes, never shorter ones or ASCII`, () => {
    const piece = (n: number): Buffer => Buffer.concat([Buffer.from('ß'), Buffer.alloc(n - 2, 0x61)]);
    assert.equal(
      callsInto(() => upcase(piece(NATIVE_MIN_BYTES - 1))),
      0,
    );
    assert.equal(
      callsInto(() => upcase(piece(NATIVE_MIN_BYTES))),
      1,
    );
    assert.equal(
      callsInto(() => upcase(Buffer.alloc(65536, 0x61))),
      0,
    );
    assert.equal(
      callsInto(() => new Upcaser().push(piece(4096), { inPlace: true })),
      1,
    );
    assert.equal(
      callsInto(() => new Upcaser({ native: false }).push(piece(4096))),
      0,
    );
    assert.equal(upcase(piece(NATIVE_MIN_BYTES)).toString(), `SS${'A'.repeat(NATIVE_MIN_BYTES - 2)}`);
  });

  test('property: the Upcaser with the addon gives the TypeScript codec’s bytes, for any split', () => {
    fc.assert(
      fc.property(mostlyWellFormed(60, 900), fc.array(fc.nat(), { maxLength: 5 }), (input, cuts) => {
        const chunks = splitAt(input, cuts);
        const codec = new Upcaser();
        const out = Buffer.concat([...chunks.map((c) => codec.push(Buffer.from(c), { inPlace: true })), codec.end()]);
        assert.deepEqual(out, typescript(chunks));
        assert.deepEqual(upcase(input), typescript([input]));
      }),
      { numRuns: 300 },
    );
  });

  test('an empty input, and input it must not modify', () => {
    const native = nativeUpcaseFunction()!;
    assert.deepEqual(native(Buffer.alloc(0)), Buffer.alloc(0));
    assert.deepEqual(native(new Uint8Array(0)), Buffer.alloc(0));
    const input = Buffer.from('straße '.repeat(100));
    const copy = Buffer.from(input);
    assert.equal(native(input).toString(), 'STRASSE '.repeat(100));
    assert.deepEqual(input, copy);
    // Larger than the scratch space it keeps: its own, freed after.
    const big = Buffer.from('ǆ'.repeat(300_000));
    assert.equal(native(big).toString(), 'Ǆ'.repeat(300_000));
  });

  test('a bad argument is a TypeError, not a crash', () => {
    const binding = nativeCodecStatus().binding!;
    assert.throws(() => binding.upcase('text' as unknown as Buffer), TypeError);
    assert.throws(() => binding.codecPush({} as never, Buffer.from('a')), TypeError);
  });
});

test('without the addon (UPCASE_NATIVE=0) the TypeScript codec does everything, with the same output', () => {
  const module = fileURLToPath(new URL('../../src/codec/upcase.ts', import.meta.url));
  const native = fileURLToPath(new URL('../../src/codec/native.ts', import.meta.url));
  const script = `
    const { upcase } = await import(${JSON.stringify(module)});
    const { nativeCodecStatus } = await import(${JSON.stringify(native)});
    const out = upcase(Buffer.from('ﬃ straße '.repeat(1000))).toString();
    console.log(JSON.stringify({ ok: out === 'FFI STRASSE '.repeat(1000), unavailable: nativeCodecStatus().unavailable }));
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, UPCASE_NATIVE: '0' },
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { ok: true, unavailable: { reason: 'disabled', detail: 'UPCASE_NATIVE=0' } });
});
