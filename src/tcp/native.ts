import { createRequire } from 'node:module';
import type net from 'node:net';
import { caseTables } from '../codec/fast.js';
import { UpcaseError } from '../errors.js';

/**
 * The optional native TCP transport (native/tcp_serve.c with native/codec.c).
 * node:net still accepts every connection and TypeScript still decides whether
 * to serve it (limits, PROXY protocol, logging); the addon then serves its bytes
 * without Node's stream layer: one read, the uppercase in C, one write, with
 * backpressure, half-close, and the idle and write timeouts, exactly as
 * {@link handleConnection} does. JavaScript hears of the connection again only
 * when it closes. Built by `npm ci` where a C compiler is available; when it is
 * missing, or `UPCASE_NATIVE=0` is set, TCP is served with net.Socket streams.
 *
 * The C codec uses the case table the TypeScript codec builds from
 * `String.prototype.toUpperCase()` ({@link caseTables}), so the two cannot
 * disagree on a character. It runs on the widest block path the CPU has, or on
 * the one `UPCASE_CODEC_PATH` names (scalar, sse2, avx2, avx512, neon; for tests
 * and benchmarks).
 */

interface ServerHandle {
  readonly __brand: 'upcase-native-tcp-server';
}
interface CodecHandle {
  readonly __brand: 'upcase-native-codec';
}

interface NativeTcpBinding {
  setTables(table: Int32Array, specialOffsets: Int32Array, specialBytes: Uint8Array): void;
  createServer(
    counters: Float64Array,
    idleMs: number,
    writeMs: number,
    onClose: (id: number, reason: number, code: string | undefined, message: string | undefined) => void,
  ): ServerHandle;
  adopt(server: ServerHandle, fd: number, initial: Buffer | null): number;
  destroy(server: ServerHandle, id: number): void;
  connInfo?(server: ServerHandle, id: number, out: Float64Array): boolean;
  closeServer(server: ServerHandle): void;
  codecPaths(): string[];
  codecCreate(path?: string): CodecHandle;
  codecPush(codec: CodecHandle, chunk: Buffer): Buffer;
  codecEnd(codec: CodecHandle): Buffer;
}

/** How a natively served connection ended. */
export type NativeCloseReason = 'end' | 'idle' | 'stall' | 'error' | 'destroyed';
const REASONS: readonly NativeCloseReason[] = ['end', 'idle', 'stall', 'error', 'destroyed'];

// The native codec sizes its output buffers for this growth (native/codec.h).
const NATIVE_MAX_GROWTH = 3;

let cached: NativeTcpBinding | null | undefined;
// Why UPCASE_CODEC_PATH cannot be followed, once found: thrown on every call after.
let codecPathFailure: UpcaseError | null = null;

/**
 * The native TCP binding, with the case tables installed; null when it is not
 * built, not supported, or disabled by `UPCASE_NATIVE=0`. Throws an `UpcaseError`
 * (`UPCASE_ERR_INVALID_ARG`) when `UPCASE_CODEC_PATH` names a codec path this CPU
 * does not have, or one is named and the addon cannot be loaded: a forced path is
 * never silently replaced.
 */
export function loadNativeTcp(): NativeTcpBinding | null {
  if (codecPathFailure !== null) throw codecPathFailure;
  if (cached !== undefined) return cached;
  cached = null;
  if (process.env.UPCASE_NATIVE === '0' || process.platform !== 'linux') return cached;
  const forced = process.env.UPCASE_CODEC_PATH ?? '';
  const unusable = (why: string): null => {
    if (forced === '') return null;
    codecPathFailure = new UpcaseError('UPCASE_ERR_INVALID_ARG', `UPCASE_CODEC_PATH=${forced}: ${why}, so no C codec runs`);
    throw codecPathFailure;
  };
  let binding: NativeTcpBinding;
  try {
    const require = createRequire(import.meta.url);
    binding = require('../../build/Release/upcase_tcp.node') as NativeTcpBinding;
  } catch {
    return unusable('the native TCP transport is not built here');
  }
  const tables = caseTables();
  // A future Unicode with a longer uppercase than the C buffers allow: use streams.
  if (tables.maxGrowth > NATIVE_MAX_GROWTH) return unusable('the case tables are too large for it');
  try {
    // The addon checks the tables before it takes them (a table it cannot use: streams).
    binding.setTables(tables.table, tables.specialOffsets, tables.specialBytes);
  } catch (err) {
    // native/codec.c says which paths this CPU has.
    if ((err as { code?: unknown }).code === 'UPCASE_ERR_CODEC_PATH') {
      codecPathFailure = new UpcaseError('UPCASE_ERR_INVALID_ARG', (err as Error).message);
      throw codecPathFailure;
    }
    return unusable('the addon refused the case tables');
  }
  cached = binding;
  return cached;
}

/** Which TCP transport a new server will use. */
export function tcpTransportName(): 'native' | 'stream' {
  return loadNativeTcp() === null ? 'stream' : 'native';
}

/** A natively served connection, as the server tracks it. */
export interface NativeConnection {
  /** Closes it now; its close callback follows with reason `destroyed`. */
  destroy(): void;
  /**
   * Its payload bytes each way, milliseconds since its last read or write progress, and
   * reply bytes it owes; null once closed (or from an addon built without `connInfo`).
   */
  figures(): { bytesIn: number; bytesOut: number; idleMs: number; owedBytes: number } | null;
}

/** How it ended; with reason `error`, the errno name (`ECONNRESET`) and its description. */
export type NativeCloseCallback = (reason: NativeCloseReason, code: string | undefined, message: string | undefined) => void;

/** What the addon counts (at the moment it happens), for the server to add to its stats. */
export interface NativeTcpCounters {
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly idleTimeouts: number;
  readonly writeTimeouts: number;
}

/** One server's natively served connections. */
export class NativeTcpTransport implements NativeTcpCounters {
  private readonly counters = new Float64Array(4);
  private readonly figuresOut = new Float64Array(4);
  private readonly handle: ServerHandle;
  private readonly open = new Map<number, NativeCloseCallback>();
  private closed: Promise<void> | null = null;
  private allClosed: (() => void) | null = null;

  constructor(
    private readonly binding: NativeTcpBinding,
    options: { idleTimeoutMs: number; writeTimeoutMs: number },
  ) {
    this.handle = binding.createServer(this.counters, options.idleTimeoutMs, options.writeTimeoutMs, (id, reason, code, message) =>
      this.onClose(id, reason, code, message),
    );
  }

  get bytesIn(): number {
    return this.counters[0]!;
  }

  get bytesOut(): number {
    return this.counters[1]!;
  }

  get idleTimeouts(): number {
    return this.counters[2]!;
  }

  get writeTimeouts(): number {
    return this.counters[3]!;
  }

  /** Connections served now. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Takes over a socket node:net has just accepted (or one whose PROXY header was
   * read: what was read after it is answered first). The socket is destroyed; the
   * connection lives on in the addon. Returns null, leaving the socket untouched,
   * when it has no file descriptor to take over (serve it with streams then).
   */
  adopt(socket: net.Socket, onClose: NativeCloseCallback): NativeConnection | null {
    if (this.closed !== null) return null;
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return null;
    const initial = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
    let id: number;
    try {
      id = this.binding.adopt(this.handle, fd, initial);
    } catch {
      if (initial !== null) socket.unshift(initial);
      return null;
    }
    this.open.set(id, onClose);
    socket.destroy();
    return {
      // Only while open: once closed, the id may serve another connection.
      destroy: () => {
        if (this.open.get(id) === onClose) this.binding.destroy(this.handle, id);
      },
      figures: () => {
        if (this.open.get(id) !== onClose || this.binding.connInfo === undefined) return null;
        const out = this.figuresOut;
        if (!this.binding.connInfo(this.handle, id, out)) return null;
        return { bytesIn: out[0]!, bytesOut: out[1]!, idleMs: out[2]!, owedBytes: out[3]! };
      },
    };
  }

  /** Closes every connection; resolves once all have reported closed. Idempotent. */
  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.closed = new Promise((resolve) => {
      this.allClosed = resolve;
    });
    this.binding.closeServer(this.handle);
    if (this.open.size === 0) this.allClosed!();
    return this.closed;
  }

  private onClose(id: number, reason: number, code: string | undefined, message: string | undefined): void {
    const callback = this.open.get(id);
    this.open.delete(id);
    try {
      callback?.(REASONS[reason] ?? 'error', code, message);
    } finally {
      if (this.open.size === 0 && this.allClosed !== null) this.allClosed();
    }
  }
}

/**
 * The C codec's block paths: first the one servers use (the widest this CPU has,
 * or the one `UPCASE_CODEC_PATH` names), then every one available, narrowest first
 * (`scalar`; on x86-64 `sse2`, with AVX2 `avx2`, with AVX-512 VBMI2 `avx512`; on
 * arm64 `neon`). Empty when the addon is not built.
 */
export function nativeCodecPaths(): string[] {
  return loadNativeTcp()?.codecPaths() ?? [];
}

/**
 * The native codec as a streaming {@link Upcaser}-like object, for tests that
 * hold it to the TypeScript codec: on the widest path, or on `path` (one of
 * {@link nativeCodecPaths}). Null when the addon is not built.
 */
export function nativeUpcaser(path?: string): { push(chunk: Buffer): Buffer; end(): Buffer } | null {
  const binding = loadNativeTcp();
  if (binding === null) return null;
  const codec = path === undefined ? binding.codecCreate() : binding.codecCreate(path);
  return {
    push: (chunk) => binding.codecPush(codec, chunk),
    end: () => binding.codecEnd(codec),
  };
}
