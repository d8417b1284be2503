import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { upcase } from '../../src/codec/upcase.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';
import { bytes, utf8ishBytes } from '../helpers/arbitraries.js';
import { PythonOracle } from '../helpers/python.js';

// One python3 process for this whole file; inputs go to it in batches.
const oracle = new PythonOracle();
after(() => oracle.close());

/**
 * Compares upcase() with Python on every input; on failure reports the
 * shortest mismatches in hex. Characters Python's older Unicode database does
 * not know are mapped as Node maps them (oracle.py), one character at a time,
 * so everything else in the same input is still checked against Python.
 */
async function checkAgainstOracle(t: TestContext, inputs: Buffer[], seed: number): Promise<void> {
  const expected = await oracle.upcaseMany(inputs);
  const failures: Array<{ input: string; ours: string; python: string }> = [];
  let overrides = 0;
  for (let i = 0; i < inputs.length; i++) {
    const ours = upcase(inputs[i]!);
    const { output, versionOverride } = expected[i]!;
    if (versionOverride) overrides++;
    if (!ours.equals(output)) {
      failures.push({ input: inputs[i]!.toString('hex'), ours: ours.toString('hex'), python: output.toString('hex') });
    }
  }
  failures.sort((a, b) => a.input.length - b.input.length);
  t.diagnostic(`${inputs.length} inputs (seed ${seed}); ${overrides} held a character newer than Python's Unicode`);
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${inputs.length} inputs differ from Python (seed ${seed})`);
}

describe('upcase() equals Python surrogateescape upper()', () => {
  test('the hand-written fixtures agree with Python', async () => {
    const outputs = await oracle.upcaseMany(CODEC_CASES.map((c) => Buffer.from(c.input, 'hex')));
    CODEC_CASES.forEach((c, i) => {
      assert.equal(outputs[i]!.output.toString('hex'), c.output, c.name);
    });
  });

  test('UTF-8-ish byte strings (5,000 cases, one batch)', async (t) => {
    const seed = Date.now() ^ (Math.random() * 0x7fffffff);
    const inputs = fc.sample(utf8ishBytes(50), { numRuns: 5000, seed });
    await checkAgainstOracle(t, inputs, seed);
  });

  test('arbitrary bytes (5,000 cases, one batch)', async (t) => {
    const seed = Date.now() ^ (Math.random() * 0x7fffffff);
    const inputs = fc.sample(bytes(20), { numRuns: 5000, seed });
    await checkAgainstOracle(t, inputs, seed);
  });

  test('long inputs mixing every kind of piece (50 cases of 1,000–2,000 pieces)', async (t) => {
    const seed = Date.now() ^ (Math.random() * 0x7fffffff);
    const inputs = fc.sample(utf8ishBytes(2000, 1000), { numRuns: 50, seed });
    await checkAgainstOracle(t, inputs, seed);
  });

  test('every single byte and every two-byte string', async (t) => {
    const inputs: Buffer[] = [];
    for (let a = 0; a < 256; a++) {
      inputs.push(Buffer.of(a));
      for (let b = 0; b < 256; b++) inputs.push(Buffer.of(a, b));
    }
    await checkAgainstOracle(t, inputs, 0);
  });

  test('every three-byte string starting with a 3- or 4-byte lead', async (t) => {
    const inputs: Buffer[] = [];
    for (const a of [0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5]) {
      for (let b = 0x70; b < 0x100; b++) for (let c = 0x70; c < 0x100; c += 3) inputs.push(Buffer.of(a, b, c));
    }
    await checkAgainstOracle(t, inputs, 0);
  });
});
