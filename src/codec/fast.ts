/**
 * In-place uppercasing: the fast paths of the codec. Everything here rewrites
 * bytes where they are, which is possible whenever a character's uppercase has
 * the same UTF-8 length (all of ASCII, and most of Latin, Greek, Cyrillic, …).
 * Characters whose uppercase changes length (`ß` → `SS`, `ΐ` → 3 code points)
 * are listed by the pass and spliced in afterwards from precomputed bytes
 * ({@link spliceSpecials}).
 */

const SWAR_MIN = 256;

/** ASCII-only uppercase of `buf[start, end)` in place, a 32-bit word at a time where aligned. */
export function upcaseAsciiInPlace(buf: Uint8Array, start: number, end: number): void {
  let i = start;
  const base = buf.byteOffset;
  if (end - start < SWAR_MIN) {
    // A word view costs an allocation: not worth it for a short message.
    for (; i < end; i++) {
      const c = buf[i]!;
      buf[i] = (c - 0x61) >>> 0 < 26 ? c ^ 0x20 : c;
    }
    return;
  }
  while (i < end && ((base + i) & 3) !== 0) {
    const c = buf[i]!;
    buf[i] = (c - 0x61) >>> 0 < 26 ? c ^ 0x20 : c;
    i++;
  }
  const words = (end - i) >>> 2;
  if (words > 0) {
    const w32 = new Int32Array(buf.buffer, base + i, words);
    for (let k = 0; k < words; k++) {
      const w = w32[k]!;
      // SWAR: per byte lane, h + 0x1f sets bit 7 iff h >= 'a' and h + 0x05 iff h > 'z'
      // (no carries between lanes since h <= 0x7f); ~w keeps bytes >= 0x80 out.
      const h = w & 0x7f7f7f7f;
      const mask = ((h + 0x1f1f1f1f) | 0) & ~((h + 0x05050505) | 0) & ~w & 0x80808080;
      w32[k] = w ^ (mask >>> 2);
    }
    i += words << 2;
  }
  for (; i < end; i++) {
    const c = buf[i]!;
    buf[i] = (c - 0x61) >>> 0 < 26 ? c ^ 0x20 : c;
  }
}

const TABLE_SIZE = 0x20000;
// Surrogates never decode from well-formed UTF-8; their entry points at no special.
const NO_SPECIAL = -0x7fffffff;

function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * The case data, in flat arrays shared with the native codec (native/codec.c).
 * `table`, for code points below U+20000: the uppercase code point when it is a
 * single code point of the same UTF-8 length (often the code point itself), else
 * `-1 - k` for the k-th "special", whose uppercase is
 * `specialBytes[specialOffsets[k], specialOffsets[k + 1])`. `maxGrowth` is the
 * largest ratio of an uppercase's UTF-8 length to its character's.
 *
 * Built once, lazily, from `String.prototype.toUpperCase()` itself, so it can
 * never disagree with it. Planes 2 and up have no case mappings, but their
 * characters are treated as special anyway (uppercased through a string once,
 * then cached), so that stays true by construction.
 */
export interface CaseTables {
  table: Int32Array;
  specialOffsets: Int32Array;
  specialBytes: Uint8Array;
  maxGrowth: number;
}

let tables: CaseTables | null = null;

export function caseTables(): CaseTables {
  if (tables !== null) return tables;
  const table = new Int32Array(TABLE_SIZE);
  const offsets = [0];
  const bytes: number[] = [];
  let maxGrowth = 1;
  for (let cp = 0; cp < TABLE_SIZE; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) {
      table[cp] = NO_SPECIAL;
      continue;
    }
    const upper = String.fromCodePoint(cp).toUpperCase();
    const u = upper.codePointAt(0)!;
    const single = upper.length === (u > 0xffff ? 2 : 1);
    if (single && utf8Length(u) === utf8Length(cp)) {
      table[cp] = u;
      continue;
    }
    const encoded = Buffer.from(upper, 'utf8');
    table[cp] = -offsets.length; // -1 - k, k = offsets.length - 1
    for (const b of encoded) bytes.push(b);
    offsets.push(bytes.length);
    maxGrowth = Math.max(maxGrowth, encoded.length / utf8Length(cp));
  }
  tables = { table, specialOffsets: Int32Array.from(offsets), specialBytes: Uint8Array.from(bytes), maxGrowth };
  return tables;
}

/**
 * Positions of characters whose uppercase changes length, found by
 * {@link upcaseInPlace}. One shared list: the codec never runs concurrently.
 */
export const specialPositions = { at: new Int32Array(1024), count: 0 };

function recordSpecial(i: number): void {
  const list = specialPositions;
  if (list.count === list.at.length) {
    const bigger = new Int32Array(list.at.length * 2);
    bigger.set(list.at);
    list.at = bigger;
  }
  list.at[list.count++] = i;
}

/**
 * Uppercases `buf[start, end)` in place, except for characters whose uppercase
 * changes length (`ß` → `SS`): those are left as they are and their positions
 * listed in {@link specialPositions}. Returns how many there are. Bytes that are
 * not part of a well-formed sequence are left as they are, one at a time, exactly
 * as `surrogateescape` treats them. The range is complete input: a sequence cut
 * by `end` is ill-formed here.
 */
export function upcaseInPlace(buf: Uint8Array, start: number, end: number): number {
  const { table } = caseTables();
  specialPositions.count = 0;
  let i = start;
  while (i < end) {
    const b0 = buf[i]!;
    if (b0 < 0x80) {
      if ((b0 - 0x61) >>> 0 < 26) buf[i] = b0 ^ 0x20;
      i++;
    } else if (b0 < 0xc2) {
      i++; // continuation byte or overlong lead: ill-formed, unchanged
    } else if (b0 < 0xe0) {
      const b1 = i + 1 < end ? buf[i + 1]! : 0;
      if ((b1 & 0xc0) !== 0x80) {
        i++;
        continue;
      }
      const u = table[((b0 & 0x1f) << 6) | (b1 & 0x3f)]!;
      if (u < 0) {
        recordSpecial(i);
        i += 2;
        continue;
      }
      buf[i] = 0xc0 | (u >> 6);
      buf[i + 1] = 0x80 | (u & 0x3f);
      i += 2;
    } else if (b0 < 0xf0) {
      const b1 = i + 1 < end ? buf[i + 1]! : 0;
      const lo = b0 === 0xe0 ? 0xa0 : 0x80;
      const hi = b0 === 0xed ? 0x9f : 0xbf;
      if (b1 < lo || b1 > hi) {
        i++;
        continue;
      }
      const b2 = i + 2 < end ? buf[i + 2]! : 0;
      if ((b2 & 0xc0) !== 0x80) {
        i++;
        continue;
      }
      const u = table[((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f)]!;
      if (u < 0) {
        recordSpecial(i);
        i += 3;
        continue;
      }
      buf[i] = 0xe0 | (u >> 12);
      buf[i + 1] = 0x80 | ((u >> 6) & 0x3f);
      buf[i + 2] = 0x80 | (u & 0x3f);
      i += 3;
    } else if (b0 < 0xf5) {
      const b1 = i + 1 < end ? buf[i + 1]! : 0;
      const lo = b0 === 0xf0 ? 0x90 : 0x80;
      const hi = b0 === 0xf4 ? 0x8f : 0xbf;
      if (b1 < lo || b1 > hi) {
        i++;
        continue;
      }
      const b2 = i + 2 < end ? buf[i + 2]! : 0;
      const b3 = i + 3 < end ? buf[i + 3]! : 0;
      if ((b2 & 0xc0) !== 0x80 || (b3 & 0xc0) !== 0x80) {
        i++;
        continue;
      }
      const cp = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
      const u = cp < TABLE_SIZE ? table[cp]! : -1;
      if (u < 0) {
        recordSpecial(i);
        i += 4;
        continue;
      }
      if (u !== cp) {
        buf[i] = 0xf0 | (u >> 18);
        buf[i + 1] = 0x80 | ((u >> 12) & 0x3f);
        buf[i + 2] = 0x80 | ((u >> 6) & 0x3f);
        buf[i + 3] = 0x80 | (u & 0x3f);
      }
      i += 4;
    } else {
      i++; // F5..FF never appear in UTF-8
    }
  }
  return specialPositions.count;
}

// The uppercase bytes of characters beyond U+1FFFF (none has a case mapping today, but
// they are treated as special anyway: see caseTables), added on first use, up to a bound.
const beyondTable = new Map<number, Uint8Array>();
const MAX_BEYOND_TABLE = 4096;

// caseTables()'s special k, as one view each (made once: the splice must not allocate).
let specialViews: Uint8Array[] | null = null;

/** The uppercase bytes of a character the in-place pass left alone (`ß` → `SS`). */
function specialBytes(cp: number): Uint8Array {
  if (cp < TABLE_SIZE) {
    const { table, specialOffsets, specialBytes: bytes } = caseTables();
    specialViews ??= Array.from({ length: specialOffsets.length - 1 }, (_, k) => bytes.subarray(specialOffsets[k], specialOffsets[k + 1]));
    return specialViews[-1 - table[cp]!]!;
  }
  let bytes = beyondTable.get(cp);
  if (bytes === undefined) {
    bytes = Buffer.from(String.fromCodePoint(cp).toUpperCase(), 'utf8');
    if (beyondTable.size < MAX_BEYOND_TABLE) beyondTable.set(cp, bytes);
  }
  return bytes;
}

/** The code point of the well-formed sequence of `n` bytes at `buf[i]`. */
function decode(buf: Uint8Array, i: number, n: number): number {
  const b0 = buf[i]!;
  if (n === 2) return ((b0 & 0x1f) << 6) | (buf[i + 1]! & 0x3f);
  if (n === 3) return ((b0 & 0x0f) << 12) | ((buf[i + 1]! & 0x3f) << 6) | (buf[i + 2]! & 0x3f);
  return ((b0 & 0x07) << 18) | ((buf[i + 1]! & 0x3f) << 12) | ((buf[i + 2]! & 0x3f) << 6) | (buf[i + 3]! & 0x3f);
}

function sequenceBytes(lead: number): number {
  return lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

// Spans shorter than this are copied by a loop: a call into C++ costs more.
const SHORT_COPY = 64;

function copyBytes(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): number {
  const n = to - from;
  if (n >= SHORT_COPY) dst.set(src.subarray(from, to), at);
  else for (let k = 0; k < n; k++) dst[at + k] = src[from + k]!;
  return n;
}

/**
 * After {@link upcaseInPlace} on `buf[start, end)` found `count` characters
 * whose uppercase changes length: the whole uppercased range in a new buffer of
 * the exact size, those characters replaced by their uppercase.
 */
export function spliceSpecials(buf: Uint8Array, start: number, end: number): Buffer {
  const { at, count } = specialPositions;
  let size = end - start;
  for (let k = 0; k < count; k++) {
    const p = at[k]!;
    const n = sequenceBytes(buf[p]!);
    size += specialBytes(decode(buf, p, n)).length - n;
  }
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  let from = start;
  for (let k = 0; k < count; k++) {
    const p = at[k]!;
    const n = sequenceBytes(buf[p]!);
    o += copyBytes(buf, from, p, out, o);
    const bytes = specialBytes(decode(buf, p, n));
    for (let b = 0; b < bytes.length; b++) out[o++] = bytes[b]!;
    from = p + n;
  }
  copyBytes(buf, from, end, out, o);
  return out;
}
