import { upcase } from '../codec/upcase.js';

/** What a request body holds: ASCII only, or a mix of 1- to 4-byte UTF-8 characters. */
/** Request bodies: `ascii` text or `utf8` text with multi-byte characters. */
export type PayloadKind = 'ascii' | 'utf8';

/** Distinct request bodies a run cycles through, so a server that answers with stale bytes is caught. */
export const PAYLOAD_VARIANTS = 16;

/**
 * UDP requests start with their sequence number as this many decimal digits
 * (uppercasing leaves digits alone), so a reply names the request it answers.
 */
export const SEQ_DIGITS = 10;
const SEQ_MODULUS = 10 ** SEQ_DIGITS;

const ASCII = 'abcdefghijklmnopqrstuvwxyz abcdefghijklmnopqrstuvwxyz0123456789.,;:!?-ABCDEFGHIJKLMNOPQRSTUVWXYZ';
// Non-ASCII characters of 2, 3 and 4 bytes; several change length when uppercased
// (ß → SS, ﬁ → FI, ŉ → ʼN, ΐ → three code points), some have no uppercase at all.
const NON_ASCII = ['é', 'ß', 'ñ', 'ø', 'ç', 'ü', 'ж', 'я', 'λ', 'ω', 'ǆ', 'ŉ', 'ΐ', 'ﬁ', 'ḁ', '中', '日', '€', '😀', '𐐨'].map((c) =>
  Buffer.from(c, 'utf8'),
);
/** Share of characters that are non-ASCII in a `utf8` payload. */
export const NON_ASCII_SHARE = 0.3;

/** A small deterministic PRNG (mulberry32), so runs are repeatable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A request body of exactly `size` bytes made of whole characters, so that
 * uppercasing a concatenation of bodies equals concatenating their uppercase.
 */
export function makeBody(kind: PayloadKind, size: number, seed: number): Buffer {
  const rand = prng(seed * 7919 + 17);
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  while (o < size) {
    if (kind === 'utf8' && rand() < NON_ASCII_SHARE) {
      const ch = NON_ASCII[Math.floor(rand() * NON_ASCII.length)]!;
      if (ch.length <= size - o) {
        o += ch.copy(out, o);
        continue;
      }
    }
    out[o++] = ASCII.charCodeAt(Math.floor(rand() * ASCII.length));
  }
  return out;
}

/** Request bodies and their expected replies, computed once before a run. */
export interface PayloadSet {
  bodies: Buffer[];
  expected: Buffer[];
}

export function makePayloads(kind: PayloadKind, size: number, count = PAYLOAD_VARIANTS): PayloadSet {
  const bodies: Buffer[] = [];
  const expected: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const body = makeBody(kind, size, i + 1);
    bodies.push(body);
    expected.push(upcase(body));
  }
  return { bodies, expected };
}

/** Writes `seq` as {@link SEQ_DIGITS} decimal digits at `offset`, without allocating. */
export function writeSeq(buf: Uint8Array, offset: number, seq: number): void {
  let n = seq % SEQ_MODULUS;
  for (let i = offset + SEQ_DIGITS - 1; i >= offset; i--) {
    buf[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
}

/** Reads the sequence number written by {@link writeSeq}; -1 when the bytes are not digits. */
export function readSeq(buf: Uint8Array, offset: number): number {
  if (buf.length < offset + SEQ_DIGITS) return -1;
  let n = 0;
  for (let i = offset; i < offset + SEQ_DIGITS; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
