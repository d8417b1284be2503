/** fast-check arbitraries for hostile upcase input: valid and invalid UTF-8 mixed. */
import fc from 'fast-check';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Characters whose uppercase changes length, and byte sequences that are not UTF-8. */
export const TRICKY: readonly Buffer[] = [
  ...['ß', 'ΐ', 'ΰ', 'ﬃ', 'ŉ', 'ǰ', 'İ', 'ı', 'ᾳ', 'ꭰ', '𐐨', '𞤢', 'ͅ', 'ﬆ', 'µ', 'ÿ', 'é', 'e\u0301', '😀', '\u0000', '\r\n'].map((s) =>
    Buffer.from(s),
  ),
  hex('80'), // lone continuation byte
  hex('bf bf'),
  hex('c0 80'), // overlong NUL
  hex('c1 bf'),
  hex('e0 80 80'), // overlong 3-byte
  hex('ed a0 80'), // UTF-16 surrogate
  hex('ed bf bf'),
  hex('f4 90 80 80'), // above U+10FFFF
  hex('f5 80 80 80'),
  hex('f0 9f'), // truncated 4-byte
  hex('f0 9f 98'),
  hex('e2 82'), // truncated 3-byte
  hex('c3'), // lone lead byte
  hex('ce'), // first byte of ΐ
  hex('ff'),
  hex('fe'),
];

const piece = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }).map((s) => Buffer.from(s)) },
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)) },
);

/** One input: a short byte string of mixed valid and invalid UTF-8. */
export const input: fc.Arbitrary<Buffer> = fc.array(piece, { minLength: 1, maxLength: 4 }).map((pieces) => Buffer.concat(pieces));
