import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { upcase, upcaseOwned } from '../../src/codec/upcase.js';
import { INCOMPLETE, incompleteTailStart, sequenceLength } from '../../src/codec/utf8.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';

const fromHex = (h: string): Buffer => Buffer.from(h, 'hex');

describe('upcase() fixtures (byte-exact)', () => {
  for (const c of CODEC_CASES) {
    test(c.name, () => {
      const input = fromHex(c.input);
      const copy = Buffer.from(input);
      assert.equal(upcase(input).toString('hex'), c.output);
      assert.deepEqual(input, copy, 'upcase() must not modify its input');
      // A plain Uint8Array (not a Buffer) view into a larger buffer works the same.
      const backing = new Uint8Array(input.length + 4);
      backing.set(input, 2);
      assert.equal(upcase(backing.subarray(2, 2 + input.length)).toString('hex'), c.output);
      assert.equal(upcaseOwned(Buffer.from(input)).toString('hex'), c.output);
    });
  }

  test('string input is encoded as UTF-8 first', () => {
    assert.equal(upcase('straße').toString('utf8'), 'STRASSE');
    assert.equal(upcase('ﬃ').toString('utf8'), 'FFI');
    assert.equal([...upcase('ΐ').toString('utf8')].length, 3);
  });

  test('upcaseOwned() rewrites an ASCII buffer in place and returns it', () => {
    const buf = Buffer.from('hello');
    const out = upcaseOwned(buf);
    assert.equal(out.buffer, buf.buffer);
    assert.equal(out.byteOffset, buf.byteOffset);
    assert.equal(buf.toString(), 'HELLO');
  });

  test('upcaseOwned() returns a new buffer when the output is a different length', () => {
    const buf = Buffer.from('straße');
    assert.equal(upcaseOwned(buf).toString(), 'STRASSE');
  });
});

describe('utf8.sequenceLength (Unicode §3.9 Table 3-7)', () => {
  const cases: Array<[string, number]> = [
    ['41', 1],
    ['c280', 2],
    ['dfbf', 2],
    ['c080', 0],
    ['c1bf', 0],
    ['80', 0],
    ['c2', INCOMPLETE],
    ['c241', 0],
    ['e0a080', 3],
    ['e09f80', 0],
    ['e0a0', INCOMPLETE],
    ['ed9fbf', 3],
    ['eda080', 0],
    ['ee8080', 3],
    ['f0908080', 4],
    ['f08f8080', 0],
    ['f0908041', 0],
    ['f09080', INCOMPLETE],
    ['f48fbfbf', 4],
    ['f4908080', 0],
    ['f5808080', 0],
    ['ff', 0],
  ];
  for (const [h, expected] of cases) {
    test(`${h} → ${expected}`, () => {
      const b = fromHex(h);
      assert.equal(sequenceLength(b, 0, b.length), expected);
    });
  }
});

describe('utf8.incompleteTailStart', () => {
  const cases: Array<[string, number]> = [
    ['', 0],
    ['41', 1],
    ['41c3', 1],
    ['41c39f', 3],
    ['41e282', 1],
    ['41f09f98', 1],
    ['41f09f', 1],
    ['f09f9880', 4],
    ['41eda0', 3], // ED A0 can never complete: nothing held
    ['41c0', 2], // C0 can never start a sequence
    ['41ff', 2],
    ['418080', 3],
  ];
  for (const [h, expected] of cases) {
    test(`${h || '(empty)'} → ${expected}`, () => {
      const b = fromHex(h);
      assert.equal(incompleteTailStart(b, 0, b.length), expected);
    });
  }

  test('never looks before `start`', () => {
    const b = fromHex('e282ac');
    assert.equal(incompleteTailStart(b, 1, 3), 3);
  });
});
