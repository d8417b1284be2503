import { type AddonStatus, loadAddon } from '../addons.js';
import { caseTables } from './fast.js';

/**
 * The C codec (native/codec.c) as an addon of its own, `upcase_codec.node`: pure
 * functions over bytes with a TypeScript twin, as ws uses bufferutil. The TypeScript
 * codec hands it chunks above a size threshold (src/codec/upcase.ts); without it (not
 * built, or `UPCASE_NATIVE=0`) everything runs in TypeScript, with the same output.
 *
 * It uses the case tables the TypeScript codec builds from
 * `String.prototype.toUpperCase()` ({@link caseTables}), so the two cannot disagree.
 */

interface CodecHandle {
  readonly __brand: 'upcase-native-codec';
}

interface NativeCodecBinding {
  setTables(table: Int32Array, specialOffsets: Int32Array, specialBytes: Uint8Array): void;
  codecPaths(): string[];
  codecCreate(path?: string): CodecHandle;
  codecPush(codec: CodecHandle, chunk: Uint8Array): Buffer;
  codecEnd(codec: CodecHandle): Buffer;
  upcase(bytes: Uint8Array): Buffer;
}

// The native codec sizes its output buffers for this growth (native/codec.h).
const NATIVE_MAX_GROWTH = 3;

let cached: AddonStatus<NativeCodecBinding> | undefined;

/** The codec addon with the case tables installed, or why it cannot be used. */
export function nativeCodecStatus(): AddonStatus<NativeCodecBinding> {
  if (cached !== undefined) return cached;
  const status = loadAddon<NativeCodecBinding>('upcase_codec', false);
  if (status.binding === null) {
    cached = status;
    return cached;
  }
  const tables = caseTables();
  try {
    if (tables.maxGrowth > NATIVE_MAX_GROWTH) throw new Error(`an uppercase ${tables.maxGrowth} times as long as its character`);
    status.binding.setTables(tables.table, tables.specialOffsets, tables.specialBytes);
    cached = status;
  } catch (err) {
    cached = { binding: null, unavailable: { reason: 'refused', detail: (err as Error).message } };
  }
  return cached;
}

/**
 * {@link upcase} of a complete piece of input in C, into a new Buffer (the input is
 * not modified); null when the addon cannot be used.
 */
export function nativeUpcaseFunction(): ((bytes: Uint8Array) => Buffer) | null {
  const binding = nativeCodecStatus().binding;
  return binding === null ? null : (bytes) => binding.upcase(bytes);
}

/**
 * The C codec's block paths: first the one it uses (the widest this CPU has), then
 * every one available (`scalar`, and on x86-64 `sse2` and, with AVX-512 VBMI2,
 * `avx512`). Empty when the addon is not built.
 */
export function nativeCodecPaths(): string[] {
  return nativeCodecStatus().binding?.codecPaths() ?? [];
}

/**
 * The C codec as a streaming {@link Upcaser}-like object, for tests that hold it to
 * the TypeScript codec: on the widest path, or on `path` (one of
 * {@link nativeCodecPaths}). Null when the addon is not built.
 */
export function nativeUpcaser(path?: string): { push(chunk: Uint8Array): Buffer; end(): Buffer } | null {
  const binding = nativeCodecStatus().binding;
  if (binding === null) return null;
  const codec = path === undefined ? binding.codecCreate() : binding.codecCreate(path);
  return {
    push: (chunk) => binding.codecPush(codec, chunk),
    end: () => binding.codecEnd(codec),
  };
}
