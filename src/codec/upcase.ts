import { isAscii } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { spliceSpecials, upcaseAsciiInPlace, upcaseInPlace } from './fast.js';
import { nativeUpcaseFunction } from './native.js';
import { incompleteTailStart, sequenceLength } from './utf8.js';

/**
 * The upcase rule (docs/protocol.md): for any bytes `data`, the output equals
 * Python's `data.decode('utf-8', 'surrogateescape').upper().encode('utf-8', 'surrogateescape')`.
 * Well-formed UTF-8 is uppercased with the full, locale-independent mappings of
 * `String.prototype.toUpperCase()` (`ß` → `SS`); every byte that is not part of
 * a well-formed sequence passes through unchanged.
 *
 * Uppercasing has no context-sensitive rules (SpecialCasing.txt's conditions all
 * concern lowercasing), so the text can be cut at any character boundary and
 * uppercased piece by piece: that is what makes the streaming form exact.
 */

/**
 * Pieces of text that are not all ASCII and at least this long (bytes) are uppercased
 * by the C codec (src/codec/native.ts) when it is built, as ws hands large frames to
 * bufferutil: below it, crossing into C costs more than it saves. Measured with
 * `npm run bench:codec` (docs/benchmarks.md). All-ASCII text stays in TypeScript,
 * which uppercases it in place.
 */
export const NATIVE_MIN_BYTES = 256;

// The C codec's function: undefined until first needed, null when it cannot be used.
let nativeUpcase: ((bytes: Uint8Array) => Buffer) | null | undefined;

/**
 * Uppercases `buf[start, end)` as a complete piece of input (no character is
 * continued past `end`). `prefix`, if given, is put in front of the result.
 * With `inPlace`, the range is rewritten inside `buf` and, whenever no
 * character changed length, returned as a view of it (no allocation): for
 * transports that own their read buffers. Otherwise `buf` is not modified.
 * With `native`, long non-ASCII pieces go to the C codec ({@link NATIVE_MIN_BYTES}).
 */
function upcaseRange(buf: Buffer, start: number, end: number, prefix: Buffer | null, inPlace: boolean, native = true): Buffer {
  const piece = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
  const ascii = isAscii(piece);
  if (!ascii && native && end - start >= NATIVE_MIN_BYTES) {
    nativeUpcase ??= nativeUpcaseFunction();
    if (nativeUpcase !== null) {
      const out = nativeUpcase(piece);
      return prefix === null ? out : Buffer.concat([prefix, out], prefix.length + out.length);
    }
  }
  let target = buf;
  let from = start;
  let to = end;
  if (!inPlace) {
    target = Buffer.allocUnsafe(end - start);
    buf.copy(target, 0, start, end);
    from = 0;
    to = end - start;
  }
  let out: Buffer = inPlace ? piece : target;
  if (ascii) {
    upcaseAsciiInPlace(target, from, to);
  } else {
    out = upcaseMixed(target, from, to);
  }
  return prefix === null ? out : Buffer.concat([prefix, out], prefix.length + out.length);
}

/**
 * Uppercases non-ASCII input in place; only if some characters change length is
 * a new buffer of the exact size assembled around them.
 */
function upcaseMixed(buf: Buffer, start: number, end: number): Buffer {
  if (upcaseInPlace(buf, start, end) === 0) return buf.subarray(start, end);
  return spliceSpecials(buf, start, end);
}

function toBuffer(input: Uint8Array | string): Buffer {
  if (typeof input === 'string') return Buffer.from(input, 'utf8');
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

/**
 * Uppercases a complete message. The input is never modified.
 *
 * @example upcase(Buffer.from('straße')) // <Buffer 53 54 52 41 53 53 45> ("STRASSE")
 */
export function upcase(input: Uint8Array | string): Buffer {
  const buf = toBuffer(input);
  return upcaseRange(buf, 0, buf.length, null, false);
}

/** Options of the {@link Upcaser} constructor. */
export interface UpcaserOptions {
  /**
   * Hand long non-ASCII chunks to the C codec when it is built ({@link NATIVE_MIN_BYTES}).
   * Default `true`; the output is the same either way.
   */
  native?: boolean;
}

/** Options of {@link Upcaser.push}. */
export interface PushOptions {
  /**
   * Allow an all-ASCII chunk to be uppercased inside the given buffer and
   * returned as a view of it (no allocation). Default `false`.
   */
  inPlace?: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * The streaming form of {@link upcase}. Feeding any split of an input through
 * `push()` and then calling `end()` yields, concatenated, exactly `upcase(input)`.
 * A character cut by a chunk boundary is held back (at most 3 bytes) until the
 * next chunk completes it or `end()` releases the bytes unchanged.
 */
export class Upcaser {
  // The held-back start of a character: pending[0, pendingLength).
  private readonly pending = Buffer.alloc(4);
  private pendingLength = 0;
  private readonly native: boolean;

  constructor(options?: UpcaserOptions) {
    this.native = options?.native !== false;
  }

  /** How many bytes are held back waiting for the rest of a character (0–3). */
  get pendingBytes(): number {
    return this.pendingLength;
  }

  /** Uppercases the next chunk of the stream. The result may be empty. */
  push(chunk: Uint8Array, options?: PushOptions): Buffer {
    const buf = toBuffer(chunk);
    const n = buf.length;
    // The common case on a socket: nothing held, an owned chunk, all ASCII (its last
    // byte being ASCII, no character can be cut at the end).
    if (this.pendingLength === 0 && n > 0 && buf[n - 1]! < 0x80 && options?.inPlace === true && isAscii(buf)) {
      upcaseAsciiInPlace(buf, 0, n);
      return buf;
    }
    let start = 0;
    let prefix: Buffer | null = null;
    if (this.pendingLength > 0) {
      const resolved = this.resolvePending(buf);
      if (resolved === null) return EMPTY; // still incomplete; everything is held
      prefix = resolved.out;
      start = resolved.consumed;
    }
    const end = buf.length;
    const tail = incompleteTailStart(buf, start, end);
    if (tail < end) {
      buf.copy(this.pending, 0, tail, end);
      this.pendingLength = end - tail;
    }
    if (tail === start) return prefix ?? EMPTY;
    return upcaseRange(buf, start, tail, prefix, options?.inPlace === true, this.native);
  }

  /** Ends the stream: returns any held-back bytes, unchanged (they never became a character). */
  end(): Buffer {
    if (this.pendingLength === 0) return EMPTY;
    const out = Buffer.from(this.pending.subarray(0, this.pendingLength));
    this.pendingLength = 0;
    return out;
  }

  /**
   * Completes the held-back character with the first bytes of `buf`. Returns
   * the output for the held bytes and how many bytes of `buf` it used, or null
   * when `buf` is still too short and everything is now held.
   */
  private resolvePending(buf: Buffer): { out: Buffer; consumed: number } | null {
    const held = this.pendingLength;
    const take = Math.min(4 - held, buf.length);
    buf.copy(this.pending, held, 0, take);
    const n = sequenceLength(this.pending, 0, held + take);
    if (n > 0) {
      this.pendingLength = 0;
      return { out: upcaseRange(this.pending, 0, n, null, false, false), consumed: n - held };
    }
    if (n < 0) {
      this.pendingLength = held + take; // take === buf.length here
      return null;
    }
    // Ill-formed: the held lead and continuation bytes pass through as they are,
    // and `buf` is read from its start (none of the held bytes can start a sequence).
    this.pendingLength = 0;
    return { out: Buffer.from(this.pending.subarray(0, held)), consumed: 0 };
  }
}

/** A Transform stream applying {@link Upcaser} to whatever is piped through it. */
export function createUpcaseStream(): Transform {
  const upcaser = new Upcaser();
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      const out = upcaser.push(chunk);
      callback(null, out.length > 0 ? out : undefined);
    },
    flush(callback: TransformCallback) {
      const out = upcaser.end();
      callback(null, out.length > 0 ? out : undefined);
    },
  });
}

/**
 * {@link upcase} for a buffer the caller owns and will not read again: an
 * all-ASCII input is uppercased in place and returned. Used by the transports.
 */
export function upcaseOwned(buf: Buffer): Buffer {
  return upcaseRange(buf, 0, buf.length, null, true);
}
