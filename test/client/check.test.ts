import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkReply, StreamReplyChecker } from '../../src/client/check.js';
import { upcase } from '../../src/codec/upcase.js';
import { splitAt, utf8ishBytes } from '../helpers/arbitraries.js';

function streamed(sent: Buffer[], received: Buffer[]) {
  const c = new StreamReplyChecker();
  for (const s of sent) c.sent(s);
  c.endOfInput();
  for (const r of received) c.received(r);
  return c.result();
}

test('one message: match, truncated (a prefix of the uppercase), mismatch', () => {
  const m = Buffer.from('straße');
  assert.deepEqual(checkReply(m, Buffer.from('STRASSE')), { verdict: 'match', expected: 7, received: 7 });
  assert.deepEqual(checkReply(m, Buffer.from('STRA')), { verdict: 'truncated', expected: 7, received: 4 });
  assert.deepEqual(checkReply(m, Buffer.from('STRAßE')), { verdict: 'mismatch', expected: 7, received: 7 });
  assert.equal(checkReply(m, Buffer.from('STRASSE!')).verdict, 'mismatch');
});

test('streamed: any split of input and reply gives the verdict of the whole; a cut reply is truncated', () => {
  fc.assert(
    fc.property(
      utf8ishBytes(30, 1),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.nat(),
      (input, inCuts, outCuts, cutAt) => {
        const whole = upcase(input);
        const sent = splitAt(
          input,
          inCuts.map((c) => c % (input.length + 1)),
        );
        assert.equal(
          streamed(
            sent,
            splitAt(
              whole,
              outCuts.map((c) => c % (whole.length + 1)),
            ),
          ).verdict,
          'match',
        );
        const cut = cutAt % whole.length;
        const short = whole.subarray(0, cut);
        assert.deepEqual(
          streamed(
            sent,
            splitAt(
              short,
              outCuts.map((c) => c % (short.length + 1)),
            ),
          ),
          {
            verdict: 'truncated',
            expected: whole.length,
            received: cut,
          },
        );
        const wrong = Buffer.from(whole);
        wrong[cut] = wrong[cut] === 0x23 ? 0x24 : 0x23;
        assert.equal(streamed(sent, [wrong]).verdict, 'mismatch');
      },
    ),
    { numRuns: 300 },
  );
});
