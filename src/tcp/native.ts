import type net from 'node:net';
import { type AddonStatus, loadAddon } from '../addons.js';
import { caseTables } from '../codec/fast.js';

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
 * disagree on a character.
 */

interface ServerHandle {
  readonly __brand: 'upcase-native-tcp-server';
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
  closeServer(server: ServerHandle): void;
  codecPaths(): string[];
}

/** How a natively served connection ended. */
export type NativeCloseReason = 'end' | 'idle' | 'stall' | 'error' | 'destroyed';
const REASONS: readonly NativeCloseReason[] = ['end', 'idle', 'stall', 'error', 'destroyed'];

// The native codec sizes its output buffers for this growth (native/codec.h).
const NATIVE_MAX_GROWTH = 3;

let cached: AddonStatus<NativeTcpBinding> | undefined;

/**
 * The native TCP binding, with the case tables installed, or why it cannot be used
 * (not built, not supported, a load error, or disabled by `UPCASE_NATIVE=0`).
 */
export function nativeTcpStatus(): AddonStatus<NativeTcpBinding> {
  if (cached !== undefined) return cached;
  const status = loadAddon<NativeTcpBinding>('upcase_tcp', true);
  cached = status.binding === null ? status : installTables(status.binding);
  return cached;
}

function installTables(binding: NativeTcpBinding): AddonStatus<NativeTcpBinding> {
  const tables = caseTables();
  // A future Unicode with a longer uppercase than the C buffers allow: use streams.
  if (tables.maxGrowth > NATIVE_MAX_GROWTH) {
    return { binding: null, unavailable: { reason: 'refused', detail: `an uppercase ${tables.maxGrowth} times as long as its character` } };
  }
  try {
    // The addon checks the tables before it takes them (a table it cannot use: streams).
    binding.setTables(tables.table, tables.specialOffsets, tables.specialBytes);
  } catch (err) {
    return { binding: null, unavailable: { reason: 'refused', detail: (err as Error).message } };
  }
  return { binding, unavailable: null };
}

/** The native TCP binding, or null when it cannot be used ({@link nativeTcpStatus} says why). */
export function loadNativeTcp(): NativeTcpBinding | null {
  return nativeTcpStatus().binding;
}

/** Which TCP transport a new server will use. */
export function tcpTransportName(): 'native' | 'stream' {
  return loadNativeTcp() === null ? 'stream' : 'native';
}

/** A natively served connection, as the server tracks it. */
export interface NativeConnection {
  /** Closes it now; its close callback follows with reason `destroyed`. */
  destroy(): void;
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

/** The C codec's block path the native TCP transport uses (`avx512`, `sse2`, `scalar`, …); undefined without it. */
export function tcpCodecPath(): string | undefined {
  return loadNativeTcp()?.codecPaths()[0];
}
