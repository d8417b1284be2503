import fc from 'fast-check';

/** Code points chosen because their uppercase is interesting (grows, shrinks, changes length in bytes). */
const CASED = [
  0x61, 0x7a, 0xdf, 0xb5, 0xff, 0x131, 0x149, 0x17f, 0x1c5, 0x1f0, 0x390, 0x3b0, 0x3c2, 0x587, 0x10d0, 0x1e96, 0x1f80, 0x1fb3, 0x2c65,
  0xa7c0, 0xfb00, 0xfb03, 0xfb13, 0xff41, 0x10428, 0x104d8, 0x10cc0, 0x118c0, 0x16e60, 0x1e922,
];

function utf8(cp: number): number[] {
  return [...Buffer.from(String.fromCodePoint(cp), 'utf8')];
}

/** A code point whose UTF-8 is exactly `len` bytes long (never a surrogate). */
function codePointOfLength(len: 1 | 2 | 3 | 4): fc.Arbitrary<number> {
  switch (len) {
    case 1:
      return fc.integer({ min: 0, max: 0x7f });
    case 2:
      return fc.integer({ min: 0x80, max: 0x7ff });
    case 3:
      return fc.oneof(fc.integer({ min: 0x800, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0xffff }));
    case 4:
      return fc.integer({ min: 0x10000, max: 0x10ffff });
  }
}

const validChar = fc
  .oneof(fc.constantFrom(...CASED), codePointOfLength(1), codePointOfLength(2), codePointOfLength(3), codePointOfLength(4))
  .map(utf8);

/** A well-formed multi-byte sequence with 1..n-1 of its bytes cut off the end. */
const truncatedChar = fc
  .tuple(
    fc.oneof(codePointOfLength(2), codePointOfLength(3), codePointOfLength(4), fc.constantFrom(...CASED.filter((c) => c > 0x7f))),
    fc.nat(),
  )
  .map(([cp, k]) => {
    const bytes = utf8(cp);
    return bytes.slice(0, 1 + (k % (bytes.length - 1)));
  });

/** Classic ill-formed sequences: overlongs, surrogates, above U+10FFFF, bad leads. */
const knownBad = fc.constantFrom(
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xe0, 0x9f, 0xbf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf0, 0x80, 0x80, 0x80],
  [0xf0, 0x8f, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
);

const asciiText = fc.array(fc.integer({ min: 0x20, max: 0x7e }), { minLength: 1, maxLength: 8 });
const highByte = fc.integer({ min: 0x80, max: 0xff }).map((b) => [b]);
const anyByte = fc.integer({ min: 0, max: 0xff }).map((b) => [b]);

/**
 * Byte strings biased toward UTF-8-ish content: ASCII runs, well-formed
 * characters of every length (and cased ones), random high bytes, truncated
 * sequences and classic ill-formed ones, concatenated in any order.
 */
export const utf8ishBytes = (maxPieces = 40, minPieces = 0): fc.Arbitrary<Buffer> =>
  fc
    .array(
      fc.oneof(
        { arbitrary: asciiText, weight: 3 },
        { arbitrary: validChar, weight: 5 },
        { arbitrary: highByte, weight: 2 },
        { arbitrary: truncatedChar, weight: 2 },
        { arbitrary: knownBad, weight: 1 },
        { arbitrary: anyByte, weight: 1 },
      ),
      // size 'max': lengths spread over the whole range, not fast-check's small default.
      { minLength: minPieces, maxLength: maxPieces, size: 'max' },
    )
    .map((pieces) => Buffer.from(pieces.flat()));

/**
 * Long, mostly well-formed text: ASCII runs and characters of every length, with
 * now and then an ill-formed piece, so that a codec's fast paths over long
 * stretches of valid text are exercised as well as their fallbacks.
 */
export const mostlyWellFormed = (minPieces: number, maxPieces: number): fc.Arbitrary<Buffer> =>
  fc
    .array(
      fc.oneof(
        { arbitrary: asciiText, weight: 12 },
        { arbitrary: validChar, weight: 12 },
        { arbitrary: fc.oneof(truncatedChar, knownBad, highByte), weight: 1 },
      ),
      { minLength: minPieces, maxLength: maxPieces, size: 'max' },
    )
    .map((pieces) => Buffer.from(pieces.flat()));

/** Any bytes at all, or UTF-8-ish ones. */
export const bytes = (maxPieces = 40): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { arbitrary: utf8ishBytes(maxPieces), weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), weight: 1 },
  );

/** Splits `buf` at the given (unsorted, possibly repeated) cut points; empty chunks included. */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(buf.subarray(from, p));
    from = p;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}
