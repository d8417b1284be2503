/**
 * UTF-8 well-formedness, byte by byte, as in Unicode §3.9 Table 3-7
 * ("Well-Formed UTF-8 Byte Sequences"). This is also exactly what CPython's
 * UTF-8 decoder accepts, so bytes it rejects are the bytes `surrogateescape`
 * escapes one by one.
 */

/** Returned by {@link sequenceLength} when the input ends inside a sequence that could still be well-formed. */
export const INCOMPLETE = -1;

/**
 * The length (1–4) of the well-formed UTF-8 sequence starting at `buf[i]`,
 * 0 when no well-formed sequence starts there, or {@link INCOMPLETE} when the
 * bytes from `i` to `end` are a proper prefix of a well-formed sequence.
 */
export function sequenceLength(buf: Uint8Array, i: number, end: number): number {
  const b0 = buf[i]!;
  if (b0 < 0x80) return 1;
  let len: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 < 0xc2) {
    return 0; // continuation byte, or the overlong leads C0/C1
  } else if (b0 < 0xe0) {
    len = 2;
  } else if (b0 < 0xf0) {
    len = 3;
    if (b0 === 0xe0)
      lo = 0xa0; // no overlongs
    else if (b0 === 0xed) hi = 0x9f; // no UTF-16 surrogates
  } else if (b0 < 0xf5) {
    len = 4;
    if (b0 === 0xf0)
      lo = 0x90; // no overlongs
    else if (b0 === 0xf4) hi = 0x8f; // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + 1 >= end) return INCOMPLETE;
  const b1 = buf[i + 1]!;
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < len; k++) {
    if (i + k >= end) return INCOMPLETE;
    if ((buf[i + k]! & 0xc0) !== 0x80) return 0;
  }
  return len;
}

/**
 * Where a trailing, still-completable sequence starts in `buf[start, end)`,
 * or `end` when the range does not end inside one. The tail is at most 3 bytes.
 */
export function incompleteTailStart(buf: Uint8Array, start: number, end: number): number {
  const stop = Math.max(start, end - 3);
  for (let p = end - 1; p >= stop; p--) {
    const b = buf[p]!;
    if ((b & 0xc0) === 0x80) continue; // continuation: the lead is further back
    return b >= 0xc2 && sequenceLength(buf, p, end) === INCOMPLETE ? p : end;
  }
  return end;
}
