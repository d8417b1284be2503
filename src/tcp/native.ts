import type net from 'node:net';
import { type AddonStatus, loadAddon, readNamedInts } from '../addons.js';
import { caseTables } from '../codec/fast.js';
import { UpcaseError } from '../errors.js';

/**
 * The optional native TCP transport (native/tcp_serve.c with native/codec.c).
 * node:net still accepts every connection and TypeScript still decides whether
 * to serve it (limits, PROXY protocol, logging); the addon then serves its bytes
 * without Node's stream layer: one read, the uppercase in C, one write. Both
 * transports follow the connection table in docs/protocol.md (timers, close
 * reasons, half-close) and pass the same contract tests (test/tcp/contract.test.ts).
 * They differ in one documented place: where reading stops for backpressure
 * (here as soon as the kernel refuses a byte, so at most one reply is held; the
 * stream transport once 64 KiB are queued). JavaScript hears of the connection
 * again only when it closes. Built by `npm ci` where a C compiler is available;
 * when it is missing, or `UPCASE_NATIVE=0` is set, TCP is served with net.Socket
 * streams; when its constants do not match this file, too (see {@link nativeTcpProblem}).
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

interface NativeTcpBinding {
  /** The close reasons' numbers, by name (CLOSE_* in C). */
  readonly closeReasons: unknown;
  /** The counters' indices in the shared Float64Array, by name, and its `length` (COUNTER_* in C). */
  readonly counters: unknown;
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
}

/** How a natively served connection ended (the close reasons of docs/protocol.md). */
export type NativeCloseReason = 'end' | 'idle' | 'stall' | 'error' | 'destroyed';
/** Every close reason and counter this file reads from the addon, by name. */
export const NATIVE_TCP_CLOSE_REASONS: readonly NativeCloseReason[] = ['end', 'idle', 'stall', 'error', 'destroyed'];
export const NATIVE_TCP_COUNTERS = ['bytesIn', 'bytesOut', 'idleTimeouts', 'writeTimeouts'] as const;
type CounterName = (typeof NATIVE_TCP_COUNTERS)[number];

/** The addon's constants, read by name: throws naming any that is missing or doubled. */
export interface NativeTcpConstants {
  /** Close reason names by their number. */
  readonly reasonByNumber: readonly NativeCloseReason[];
  readonly counter: Readonly<Record<CounterName, number>>;
  readonly counterCount: number;
}

export function readNativeTcpConstants(binding: Pick<NativeTcpBinding, 'closeReasons' | 'counters'>): NativeTcpConstants {
  const reasons = readNamedInts(binding, 'closeReasons', NATIVE_TCP_CLOSE_REASONS);
  const counter = readNamedInts(binding, 'counters', NATIVE_TCP_COUNTERS, { bounded: true });
  const reasonByNumber: NativeCloseReason[] = [];
  for (const name of NATIVE_TCP_CLOSE_REASONS) reasonByNumber[reasons[name]] = name;
  return { reasonByNumber, counter, counterCount: counter.length! };
}

// The native codec sizes its output buffers for this growth (native/codec.h).
const NATIVE_MAX_GROWTH = 3;

/** The loaded binding with its constants read. */
export interface LoadedNativeTcp {
  readonly binding: NativeTcpBinding;
  readonly constants: NativeTcpConstants;
}

let cached: AddonStatus<LoadedNativeTcp> | undefined;
// Why UPCASE_CODEC_PATH cannot be followed, once found: thrown on every call after.
let codecPathFailure: UpcaseError | null = null;

/**
 * The native TCP binding, with the case tables installed and its constants read,
 * or why it cannot be used (as data: not built, disabled by `UPCASE_NATIVE=0`, a
 * load error — an addon whose constants do not match this file counts as one —, or
 * case tables it refused). Throws an `UpcaseError` (`UPCASE_ERR_INVALID_ARG`) when
 * `UPCASE_CODEC_PATH` names a codec path this CPU does not have, or one is named and
 * the addon cannot be used: a forced path is never silently replaced.
 */
export function nativeTcpStatus(): AddonStatus<LoadedNativeTcp> {
  if (codecPathFailure !== null) throw codecPathFailure;
  if (cached !== undefined) return cached;
  cached = load();
  const forced = process.env.UPCASE_CODEC_PATH ?? '';
  if (cached.binding === null && forced !== '' && cached.unavailable.reason !== 'disabled') {
    codecPathFailure = new UpcaseError(
      'UPCASE_ERR_INVALID_ARG',
      `UPCASE_CODEC_PATH=${forced}: the native TCP transport cannot be used (${cached.unavailable.detail}), so no C codec runs`,
    );
    throw codecPathFailure;
  }
  return cached;
}

function load(): AddonStatus<LoadedNativeTcp> {
  const status = loadAddon<NativeTcpBinding>('upcase_tcp', true);
  if (status.binding === null) return status;
  const binding = status.binding;
  let constants: NativeTcpConstants;
  try {
    constants = readNativeTcpConstants(binding);
  } catch (err) {
    // An addon built from other sources than this TypeScript (a stale build/).
    return {
      binding: null,
      unavailable: { reason: 'load-error', detail: `upcase_tcp.node does not match src/tcp/native.ts: ${(err as Error).message}` },
    };
  }
  const tables = caseTables();
  // A future Unicode with a longer uppercase than the C buffers allow: use streams.
  if (tables.maxGrowth > NATIVE_MAX_GROWTH) {
    return {
      binding: null,
      unavailable: {
        reason: 'refused',
        detail: `an uppercase grows up to ${tables.maxGrowth}× here; the native codec allows ${NATIVE_MAX_GROWTH}×`,
      },
    };
  }
  try {
    // The addon checks the tables before it takes them (a table it cannot use: streams).
    binding.setTables(tables.table, tables.specialOffsets, tables.specialBytes);
  } catch (err) {
    // native/codec.c says which paths this CPU has.
    if ((err as { code?: unknown }).code === 'UPCASE_ERR_CODEC_PATH') {
      codecPathFailure = new UpcaseError('UPCASE_ERR_INVALID_ARG', (err as Error).message);
      throw codecPathFailure;
    }
    return {
      binding: null,
      unavailable: { reason: 'refused', detail: `the native codec refused the case tables: ${(err as Error).message}` },
    };
  }
  return { binding: { binding, constants }, unavailable: null };
}

/** The native TCP binding, or null when it cannot be used ({@link nativeTcpStatus} says why). */
export function loadNativeTcp(): LoadedNativeTcp | null {
  return nativeTcpStatus().binding;
}

/**
 * Why the native TCP transport is built but not used (a load error such as a stale
 * build whose constants do not match, case tables it cannot take); null when it is
 * used, or simply not built or disabled.
 */
export function nativeTcpProblem(): string | null {
  const { unavailable } = nativeTcpStatus();
  return unavailable !== null && (unavailable.reason === 'load-error' || unavailable.reason === 'refused') ? unavailable.detail : null;
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
  private readonly binding: NativeTcpBinding;
  private readonly constants: NativeTcpConstants;
  private readonly counters: Float64Array;
  private readonly figuresOut = new Float64Array(4);
  private readonly handle: ServerHandle;
  private readonly open = new Map<number, NativeCloseCallback>();
  private closed: Promise<void> | null = null;
  private allClosed: (() => void) | null = null;

  constructor(native: LoadedNativeTcp, options: { idleTimeoutMs: number; writeTimeoutMs: number }) {
    const { binding, constants } = native;
    this.binding = binding;
    this.constants = constants;
    this.counters = new Float64Array(constants.counterCount);
    this.handle = binding.createServer(this.counters, options.idleTimeoutMs, options.writeTimeoutMs, (id, reason, code, message) =>
      this.onClose(id, reason, code, message),
    );
  }

  get bytesIn(): number {
    return this.counters[this.constants.counter.bytesIn]!;
  }

  get bytesOut(): number {
    return this.counters[this.constants.counter.bytesOut]!;
  }

  get idleTimeouts(): number {
    return this.counters[this.constants.counter.idleTimeouts]!;
  }

  get writeTimeouts(): number {
    return this.counters[this.constants.counter.writeTimeouts]!;
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
    return new AdoptedConnection(this, id, onClose);
  }

  /** Closes connection `id` if `onClose` is still its callback (once closed, the id may serve another). */
  destroyConnection(id: number, onClose: NativeCloseCallback): void {
    if (this.open.get(id) === onClose) this.binding.destroy(this.handle, id);
  }

  /** Connection `id`'s figures if `onClose` is still its callback; null once closed. */
  connectionFigures(id: number, onClose: NativeCloseCallback): ReturnType<NativeConnection['figures']> {
    if (this.open.get(id) !== onClose || this.binding.connInfo === undefined) return null;
    const out = this.figuresOut;
    if (!this.binding.connInfo(this.handle, id, out)) return null;
    return { bytesIn: out[0]!, bytesOut: out[1]!, idleMs: out[2]!, owedBytes: out[3]! };
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
      callback?.(this.constants.reasonByNumber[reason] ?? 'error', code, message);
    } finally {
      if (this.open.size === 0 && this.allClosed !== null) this.allClosed();
    }
  }
}

/** A natively served connection: three fields (no closures: thousands of them may be open). */
class AdoptedConnection implements NativeConnection {
  constructor(
    private readonly transport: NativeTcpTransport,
    private readonly id: number,
    private readonly onClose: NativeCloseCallback,
  ) {}

  destroy(): void {
    this.transport.destroyConnection(this.id, this.onClose);
  }

  figures(): ReturnType<NativeConnection['figures']> {
    return this.transport.connectionFigures(this.id, this.onClose);
  }
}

/** The C codec's block path the native TCP transport uses (`avx512`, `avx2`, `sse2`, `neon`, `scalar`); undefined without it. */
export function tcpCodecPath(): string | undefined {
  return loadNativeTcp()?.binding.codecPaths()[0];
}
