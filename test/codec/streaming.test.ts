import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createUpcaseStream, upcase, Upcaser } from '../../src/codec/upcase.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';
import { bytes, splitAt } from '../helpers/arbitraries.js';

/** Feeds `chunks` through a fresh Upcaser, checking the held-back bound after every push. */
function streamed(chunks: readonly Uint8Array[], inPlace = false): Buffer {
  const u = new Upcaser();
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    out.push(Buffer.from(u.push(chunk, { inPlace })));
    assert.ok(u.pendingBytes >= 0 && u.pendingBytes <= 3, `pendingBytes ${u.pendingBytes} out of 0..3`);
  }
  out.push(u.end());
  assert.equal(u.pendingBytes, 0, 'end() leaves nothing held');
  return Buffer.concat(out);
}

const h = (s: string): Buffer => Buffer.from(s, 'hex');

describe('Upcaser: a character split across chunks', () => {
  const chars = [
    ['ß (2 bytes)', 'ß', 'SS'],
    ['ﬃ (3 bytes)', 'ﬃ', 'FFI'],
    ['ΐ (2 bytes → 6)', 'ΐ', '\u0399\u0308\u0301'],
    ['𐐨 (4 bytes)', '𐐨', '𐐀'],
    ['😀 (4 bytes, no case)', '😀', '😀'],
  ] as const;
  for (const [name, ch, upper] of chars) {
    const input = Buffer.from(`a${ch}b${ch}`, 'utf8');
    const expected = Buffer.from(`A${upper}B${upper}`, 'utf8');

    test(`${name}: split at every position`, () => {
      for (let i = 0; i <= input.length; i++) {
        assert.deepEqual(streamed([input.subarray(0, i), input.subarray(i)]), expected, `split at ${i}`);
      }
    });

    test(`${name}: split at every pair of positions`, () => {
      for (let i = 0; i <= input.length; i++) {
        for (let j = i; j <= input.length; j++) {
          const chunks = [input.subarray(0, i), input.subarray(i, j), input.subarray(j)];
          assert.deepEqual(streamed(chunks), expected, `split at ${i}, ${j}`);
        }
      }
    });

    test(`${name}: one byte at a time`, () => {
      assert.deepEqual(streamed([...input].map((b) => Buffer.of(b))), expected);
    });
  }

  test('a held character comes out whole once its last byte arrives', () => {
    const u = new Upcaser();
    assert.equal(u.push(h('61f0')).toString('hex'), '41'); // 'a' is answered at once
    assert.equal(u.pendingBytes, 1);
    assert.equal(u.push(h('90')).length, 0);
    assert.equal(u.pendingBytes, 2);
    assert.equal(u.push(h('90')).length, 0);
    assert.equal(u.pendingBytes, 3);
    assert.equal(u.push(h('a862')).toString('hex'), 'f090908042'); // 𐐀B
    assert.equal(u.pendingBytes, 0);
  });
});

describe('Upcaser: at most 3 bytes held back', () => {
  test('the longest incomplete sequence is 3 bytes', () => {
    const u = new Upcaser();
    u.push(h('f09f98'));
    assert.equal(u.pendingBytes, 3);
  });

  test('bytes that can never complete a character are not held', () => {
    for (const tail of ['ff', 'c0', 'c1', 'f5', '80', 'eda0', 'e080', 'f08f', 'f490', 'c341']) {
      const u = new Upcaser();
      const out = u.push(h(`61${tail}`));
      assert.equal(u.pendingBytes, 0, `tail ${tail}`);
      assert.equal(out.toString('hex'), upcase(h(`61${tail}`)).toString('hex'), `tail ${tail}`);
    }
  });

  test('a held prefix that turns out ill-formed is released unchanged', () => {
    const u = new Upcaser();
    assert.equal(u.push(h('f09f98')).length, 0);
    assert.equal(u.push(h('41')).toString('hex'), 'f09f9841');
    assert.equal(u.pendingBytes, 0);
  });

  test('a held lead followed by another lead', () => {
    const u = new Upcaser();
    assert.equal(u.push(h('c3')).length, 0);
    assert.equal(u.push(h('c3')).toString('hex'), 'c3');
    assert.equal(u.pendingBytes, 1);
    assert.equal(u.push(h('9f')).toString('hex'), '5353');
  });

  test('many pushes of incomplete input never hold more than 3 bytes', () => {
    const u = new Upcaser();
    const out: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      out.push(u.push(h('e2')), u.push(h('82')));
      assert.ok(u.pendingBytes <= 3);
    }
    out.push(u.end());
    assert.equal(Buffer.concat(out).toString('hex'), 'e282'.repeat(100));
  });
});

describe('Upcaser.end()', () => {
  test('flushes held bytes unchanged', () => {
    for (const held of ['c3', 'e282', 'f09f98', 'f0']) {
      const u = new Upcaser();
      assert.equal(u.push(h(`78${held}`)).toString('hex'), '58');
      assert.equal(u.pendingBytes, held.length / 2);
      assert.equal(u.end().toString('hex'), held);
      assert.equal(u.pendingBytes, 0);
      assert.equal(u.end().length, 0, 'a second end() has nothing left');
    }
  });

  test('with nothing held returns an empty buffer', () => {
    const u = new Upcaser();
    u.push(Buffer.from('abc'));
    assert.equal(u.end().length, 0);
  });

  test('the Upcaser can be reused after end()', () => {
    const u = new Upcaser();
    u.push(h('c3'));
    u.end();
    assert.equal(u.push(h('c39f')).toString(), 'SS');
  });
});

describe('Upcaser push options', () => {
  test('inPlace: an all-ASCII chunk is uppercased inside the given buffer', () => {
    const chunk = Buffer.from('hello');
    const out = new Upcaser().push(chunk, { inPlace: true });
    assert.equal(out.toString(), 'HELLO');
    assert.equal(chunk.toString(), 'HELLO');
    assert.equal(out.buffer, chunk.buffer);
  });

  test('without inPlace the chunk is never modified', () => {
    const chunk = Buffer.from('hello');
    const out = new Upcaser().push(chunk);
    assert.equal(out.toString(), 'HELLO');
    assert.equal(chunk.toString(), 'hello');
  });

  test('inPlace with a held prefix still gives the right bytes', () => {
    const u = new Upcaser();
    u.push(h('c3'), { inPlace: true });
    assert.equal(u.push(Buffer.from([0x9f, 0x61]), { inPlace: true }).toString(), 'SSA');
  });

  test('accepts a Uint8Array that is not a Buffer', () => {
    const u = new Upcaser();
    assert.equal(u.push(new Uint8Array([0x61, 0xc3])).toString(), 'A');
    assert.equal(u.push(new Uint8Array([0x9f])).toString(), 'SS');
  });
});

describe('fixtures, streamed', () => {
  for (const c of CODEC_CASES) {
    test(c.name, () => {
      const input = h(c.input);
      assert.equal(streamed([...input].map((b) => Buffer.of(b))).toString('hex'), c.output, 'byte by byte');
      for (let i = 0; i <= input.length; i++) {
        assert.equal(streamed([input.subarray(0, i), input.subarray(i)]).toString('hex'), c.output, `split at ${i}`);
      }
    });
  }
});

describe('property: any chunking equals one-shot', () => {
  test('random bytes, random cut points', () => {
    fc.assert(
      fc.property(bytes(60), fc.array(fc.nat(), { maxLength: 12 }), (input, cuts) => {
        assert.deepEqual(streamed(splitAt(input, cuts)), upcase(input));
      }),
      { numRuns: 3000 },
    );
  });

  test('random bytes, one byte at a time, in place', () => {
    fc.assert(
      fc.property(bytes(30), (input) => {
        const expected = upcase(input);
        assert.deepEqual(
          streamed(
            [...input].map((b) => Buffer.of(b)),
            true,
          ),
          expected,
        );
      }),
      { numRuns: 1000 },
    );
  });
});

describe('createUpcaseStream()', () => {
  async function collect(chunks: Buffer[]): Promise<Buffer> {
    const out: Buffer[] = [];
    for await (const piece of Readable.from(chunks, { objectMode: false }).pipe(createUpcaseStream())) out.push(piece as Buffer);
    return Buffer.concat(out);
  }

  test('uppercases a split multi-byte text', async () => {
    const input = Buffer.from('straße ﬃ ΐ 𐐨', 'utf8');
    const chunks = [...input].map((b) => Buffer.of(b));
    assert.equal((await collect(chunks)).toString(), 'STRASSE FFI \u0399\u0308\u0301 𐐀');
  });

  test('flushes held bytes at the end of the stream', async () => {
    assert.equal((await collect([h('61'), h('f09f98')])).toString('hex'), '41f09f98');
  });

  test('empty input gives empty output', async () => {
    assert.equal((await collect([])).length, 0);
  });

  test('property: equals one-shot', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(30), fc.array(fc.nat(), { maxLength: 6 }), async (input, cuts) => {
        const chunks = splitAt(input, cuts).filter((c) => c.length > 0);
        assert.deepEqual(await collect(chunks), upcase(input));
      }),
      { numRuns: 200 },
    );
  });
});
