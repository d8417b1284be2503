import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Upcaser } from '../codec/upcase.js';
import { countError, type ServerStats } from '../stats.js';
import { SMALL_CHUNK, turnSpent } from './turn.js';
import type { Tracer } from '../trace.js';

/** Options of {@link handleConnection}: where to count and log, and the connection's timeouts. */
export interface ConnectionOptions {
  stats: ServerStats;
  logger: Logger;
  /**
   * The stream hands us buffers nobody else holds (true for `net.Socket` and
   * `tls.TLSSocket` reads), so ASCII can be uppercased in place. Default false.
   */
  ownsChunks?: boolean;
  /**
   * Milliseconds with no traffic in either direction (nothing read, no reply
   * handed to the transport) before the connection is closed; 0 disables. Default 0.
   */
  idleTimeoutMs?: number;
  /**
   * Milliseconds reply bytes may stay owed without a break (handed to the stream
   * but not yet accepted by the kernel, because the peer does not read) before
   * the connection is reset; 0 disables. Default 0. See docs/protocol.md.
   */
  writeTimeoutMs?: number;
  /** Fields for this connection's log lines (transport, remote address). Never payload. */
  logFields?: Record<string, unknown>;
  /** Count payload bytes in `stats.tlsBytesIn/Out` instead of `tcpBytesIn/Out`. Default false. */
  tls?: boolean;
  /** This connection's own counters, kept up to date for `/connections`. Optional. */
  counters?: ConnectionCounters;
  /** Reports each read, reply, FIN and the close (`upcase serve --trace`), as connection socket #`id`. */
  trace?: { tracer: Tracer; id: number };
}

/** One connection's own counters, which {@link handleConnection} keeps up to date (for `/connections`). Never payload. */
export interface ConnectionCounters {
  bytesIn: number;
  bytesOut: number;
  /** `Date.now()` of the last read or write progress. */
  lastActive: number;
}

type Resettable = Duplex & { resetAndDestroy?: () => unknown };

/**
 * Logs how a TCP connection ended, for every TCP transport alike (docs/protocol.md, the close
 * reasons): `idle` (the idle timeout), `stall` (the write timeout), or `error` (a socket error).
 * Builds the line's fields only when debug lines are written.
 */
export function logConnectionEnd(
  logger: Logger,
  connection: { readonly logFields: Record<string, unknown> | undefined },
  reason: 'idle' | 'stall' | 'error',
  error?: { readonly code?: string | undefined; readonly message?: string | undefined },
): void {
  if (!logger.isLevelEnabled('debug')) return;
  const { logFields } = connection;
  if (reason === 'error') logger.debug({ ...logFields, code: error?.code, err: error?.message }, 'connection error');
  else
    logger.debug(
      { ...logFields, code: 'UPCASE_ERR_TIMEOUT' },
      reason === 'idle' ? 'idle timeout; closing' : 'client left replies unread; closing',
    );
}

/**
 * Serves one upcase conversation over any Duplex: each chunk read is answered
 * at once with its uppercase (no framing, no newline needed), reading pauses
 * while the peer is not reading our replies, and after the peer's end of input
 * everything still owed is sent before we end our side.
 *
 * Faults stay inside this connection: errors are counted and logged at debug
 * level, and the stream is destroyed. Memory per connection is bounded by the
 * stream's buffers plus one reply (at most 3× one read). An idle connection costs
 * one small object besides its stream: the listeners are shared by every
 * connection, the idle timeout is one timer per timeout value (IdleSweep), and the
 * codec's state exists only while a character is cut across reads (see `codec`).
 */
export function handleConnection(stream: Duplex, options: ConnectionOptions): void {
  serveStream(stream, new StreamSettings(options), new StreamConnection(), options.trace);
}

/**
 * What every connection served with the same options shares: one per server and
 * listener, so that a connection keeps a pointer to it rather than its own copies.
 */
export class StreamSettings {
  readonly stats: ServerStats;
  readonly logger: Logger;
  readonly logFields: Record<string, unknown> | undefined;
  readonly counters: ConnectionCounters | undefined;
  readonly pushOptions: typeof IN_PLACE | typeof COPY;
  readonly tls: boolean;
  readonly writeTimeoutMs: number;
  /** The idle sweep of these connections; null: no idle timeout. */
  readonly idle: IdleSweep | null;
  /** Told first when a connection's stream closes, with the connection's state (the one {@link serveStream} was given). */
  readonly closed: ((connection: StreamConnection) => void) | undefined;

  constructor(options: Omit<ConnectionOptions, 'trace'> & { closed?: ((connection: StreamConnection) => void) | undefined }) {
    this.closed = options.closed;
    this.stats = options.stats;
    this.logger = options.logger;
    this.logFields = options.logFields;
    this.counters = options.counters;
    this.tls = options.tls === true;
    this.pushOptions = options.ownsChunks === true ? IN_PLACE : COPY;
    this.writeTimeoutMs = options.writeTimeoutMs ?? 0;
    this.idle = idleSweep(options.idleTimeoutMs ?? 0);
  }
}

/**
 * Serves `stream` as {@link handleConnection} does, for a server: `settings` shared by its
 * connections, and `connection` the state to keep it in. A server passes its own record of
 * the connection, a subclass of {@link StreamConnection}, so that one object per connection
 * holds both (docs/benchmarks.md, memory per idle connection); its log fields are read from
 * the connection's `logFields` when a line is logged.
 */
export function serveStream(
  stream: Duplex,
  settings: StreamSettings,
  connection: StreamConnection,
  trace?: { tracer: Tracer; id: number },
): void {
  connection.stream = stream;
  connection.settings = settings;
  if (trace !== undefined) connection.trace = new ConnectionTrace(trace.tracer, trace.id, settings.tls ? 'tls' : 'tcp');
  (stream as Served)[kConnection] = connection;
  stream.on('data', onData);
  dropIdleEndListener(stream);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  settings.idle?.add(connection);
}

/**
 * A net.Socket listens to its own 'end' with Node's `onReadableStreamEnd` (lib/net.js),
 * which does something only when `allowHalfOpen` is false (it then makes later writes
 * fail). Ours is true, fixed at construction, so that listener never acts: dropping it
 * lets our 'end' listener be the only one, kept without an array (64 bytes per connection).
 * Dropped only when it is exactly that listener on a half-open socket; otherwise both stay.
 */
function dropIdleEndListener(stream: Duplex): void {
  if ((stream as { allowHalfOpen?: unknown }).allowHalfOpen !== true || stream.listenerCount('end') !== 1) return;
  const [listener] = stream.listeners('end');
  if (listener?.name === 'onReadableStreamEnd') stream.off('end', listener as (...args: unknown[]) => void);
}

const kConnection = Symbol('upcase.connection');
type Served = Duplex & { [kConnection]: StreamConnection };

// Upcaser.push with nothing held is a pure function of the chunk, so connections share one
// Upcaser until a read ends inside a character: that one then stays with the connection
// (it holds the character's first bytes) and a fresh one is shared from then on.
let sharedUpcaser = new Upcaser();
const IN_PLACE = { inPlace: true } as const;
const COPY = { inPlace: false } as const;
// StreamConnection's flags.
const IN_IDLE = 1;
const WAITING_FOR_DRAIN = 2;
const YIELDING = 4;

/**
 * One connection's state while {@link serveStream} serves it; its listeners are the module's
 * functions below, called with the stream as `this`. Made empty, and filled in by serveStream.
 */
export class StreamConnection {
  /** The stream served; set by serveStream. */
  stream!: Duplex;
  /** What it shares with the other connections of its server; set by serveStream. */
  settings!: StreamSettings;
  trace: ConnectionTrace | null = null;
  /** This connection's own Upcaser while it holds the start of a character; null otherwise. */
  upcaser: Upcaser | null = null;
  /** Its place in its settings' idle sweep. */
  idlePrev: StreamConnection | null = null;
  idleNext: StreamConnection | null = null;
  // inIdle, waitingForDrain and yielding, as bits of one small integer (three fields would be 16 bytes more).
  private flags = 0;
  // performance.now() of the last traffic, whole milliseconds rounded up (a small integer,
  // stored in the object rather than boxed as a double; the idle timeout is never early).
  lastTraffic = now();
  bytesIn = 0;
  bytesOut = 0;
  stallTimer: NodeJS.Timeout | null = null;
  // Bytes queued by a write that went asynchronous without a completion callback
  // (see onData); -1 when there is none.
  untrackedQueued = -1;
  private onWritten: ((err?: Error | null) => void) | null = null;

  /** In its settings' idle sweep. */
  get inIdle(): boolean {
    return (this.flags & IN_IDLE) !== 0;
  }

  set inIdle(on: boolean) {
    this.flags = on ? this.flags | IN_IDLE : this.flags & ~IN_IDLE;
  }

  // Why reading is paused: the peer is not reading our replies, and/or this turn of the
  // event loop has no time left (turnSpent). It resumes when neither holds.
  get waitingForDrain(): boolean {
    return (this.flags & WAITING_FOR_DRAIN) !== 0;
  }

  set waitingForDrain(on: boolean) {
    this.flags = on ? this.flags | WAITING_FOR_DRAIN : this.flags & ~WAITING_FOR_DRAIN;
  }

  get yielding(): boolean {
    return (this.flags & YIELDING) !== 0;
  }

  set yielding(on: boolean) {
    this.flags = on ? this.flags | YIELDING : this.flags & ~YIELDING;
  }

  get stats(): ServerStats {
    return this.settings.stats;
  }

  get logger(): Logger {
    return this.settings.logger;
  }

  /** Fields of this connection's log lines, read when a line is logged (a subclass may build them). Never payload. */
  get logFields(): Record<string, unknown> | undefined {
    return this.settings.logFields;
  }

  /** Bytes read and answered, milliseconds since the last traffic, and reply bytes owed. */
  streamFigures(): { bytesIn: number; bytesOut: number; idleMs: number; owedBytes: number } {
    return { bytesIn: this.bytesIn, bytesOut: this.bytesOut, idleMs: now() - this.lastTraffic, owedBytes: this.stream.writableLength };
  }

  /** Uppercases the next chunk: this connection's Upcaser if it holds bytes, else the shared one. */
  codec(chunk: Buffer): Buffer {
    const { pushOptions } = this.settings;
    const own = this.upcaser;
    if (own !== null) {
      const out = own.push(chunk, pushOptions);
      if (own.pendingBytes === 0) this.upcaser = null;
      return out;
    }
    const out = sharedUpcaser.push(chunk, pushOptions);
    if (sharedUpcaser.pendingBytes > 0) {
      this.upcaser = sharedUpcaser;
      sharedUpcaser = new Upcaser();
    }
    return out;
  }

  countIn(n: number): void {
    const { stats, counters } = this.settings;
    if (this.settings.tls) stats.tlsBytesIn += n;
    else stats.tcpBytesIn += n;
    this.bytesIn += n;
    if (counters !== undefined) counters.bytesIn += n;
  }

  countOut(n: number): void {
    const { stats, counters } = this.settings;
    if (this.settings.tls) stats.tlsBytesOut += n;
    else stats.tcpBytesOut += n;
    this.bytesOut += n;
    if (counters !== undefined) counters.bytesOut += n;
  }

  /** Traffic: the idle timeout starts over. */
  touch(): void {
    this.lastTraffic = now();
    this.settings.idle?.touch(this);
    const { counters } = this.settings;
    if (counters !== undefined) counters.lastActive = Date.now();
  }

  resumeIfFree(): void {
    if (!this.waitingForDrain && !this.yielding) this.stream.resume();
  }

  // Our own idle timeout rather than net.Socket#setTimeout: that one, when a write
  // is stuck, lets a first expiry pass if the write queue shrank since the write
  // was queued, so a silent connection could live up to twice the timeout.
  /** The idle timeout expired; returns false (and stays) when a queued write made progress since. */
  onIdle(): boolean {
    const { stream } = this;
    if (this.untrackedQueued >= 0 && stream.writableLength < this.untrackedQueued) {
      // That write made progress at some point since: traffic, so wait a full period more.
      this.untrackedQueued = stream.writableLength > 0 ? stream.writableLength : -1;
      return false;
    }
    this.stats.idleTimeouts++;
    logConnectionEnd(this.logger, this, 'idle');
    stream.destroy();
    return true;
  }

  // The write timer runs while replies are owed that the transport has not passed
  // to the kernel (writableLength > 0), as native/tcp_serve.c runs it while the
  // kernel refuses bytes; docs/protocol.md has the table both follow.
  onStall(): void {
    const { stream } = this;
    this.stallTimer = null;
    // Everything owed went out after all (a write that completed without a callback).
    if (stream.writableLength === 0) return;
    this.stats.writeTimeouts++;
    logConnectionEnd(this.logger, this, 'stall');
    // Reset rather than close: the peer is not reading, so a FIN would only queue
    // behind replies it will never take, keeping kernel buffers busy for minutes.
    const resettable = stream as Resettable;
    try {
      if (typeof resettable.resetAndDestroy === 'function') resettable.resetAndDestroy();
    } catch {
      // Only plain TCP handles can be reset (a TLSSocket throws ERR_INVALID_HANDLE_TYPE).
    }
    stream.destroy();
  }

  armStall(): void {
    const { writeTimeoutMs } = this.settings;
    if (writeTimeoutMs > 0 && this.stallTimer === null) {
      this.stallTimer = setTimeout(onStallTimer, writeTimeoutMs, this);
      this.stallTimer.unref();
    }
  }

  clearStall(): void {
    if (this.stallTimer !== null) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
  }

  /** The completion callback for writes queued behind others (see onData): made once, when first needed. */
  writtenCallback(): (err?: Error | null) => void {
    this.onWritten ??= (err) => {
      if (err == null) {
        this.untrackedQueued = -1;
        this.touch();
        if (this.stream.writableLength === 0) this.clearStall();
      }
    };
    return this.onWritten;
  }

  /** Backpressure: stop reading from a client that is not reading from us, until 'drain'. */
  waitForDrain(): void {
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      this.stream.on('drain', onDrain);
    }
    this.stream.pause();
  }
}

const connectionOf = (stream: Duplex): StreamConnection => (stream as Served)[kConnection];
const onStallTimer = (c: StreamConnection): void => c.onStall();
const nextTurn = (c: StreamConnection): void => {
  c.yielding = false;
  c.resumeIfFree();
};

function onData(this: Duplex, chunk: Buffer): void {
  const c = connectionOf(this);
  if (chunk.length >= SMALL_CHUNK && turnSpent()) {
    // Other connections, and the listener's next accept, go first: this chunk waits for
    // the next turn, in front of whatever else this connection has sent. A small chunk
    // never waits: it costs next to nothing, and it is how interactive clients' requests
    // come (a read returns all a sender has queued, so a bulk sender's chunks are large).
    this.pause();
    this.unshift(chunk);
    if (!c.yielding) {
      c.yielding = true;
      setImmediate(nextTurn, c);
    }
    return;
  }
  c.countIn(chunk.length);
  // Before the codec: it may uppercase the chunk in place.
  c.trace?.recv(chunk);
  const out = c.codec(chunk);
  if (out.length === 0) {
    c.touch();
    return;
  }
  c.countOut(out.length);
  c.trace?.send(out);
  // Write completion counts as traffic for the idle timer, but a completion
  // callback costs a tick per reply, so ask for one only when earlier writes are
  // still queued (this one will complete after them). A write into an empty queue
  // almost always completes at once; when it does not, onIdle checks its progress.
  const queued = this.writableLength > 0;
  // Nothing was owed until this reply: any earlier stall has ended.
  if (!queued) c.clearStall();
  const flowing = this.write(out, queued ? c.writtenCallback() : undefined);
  if (!queued && this.writableLength > 0 && c.untrackedQueued < 0) c.untrackedQueued = this.writableLength;
  // Bytes the kernel did not take at once are owed from now on.
  if (this.writableLength > 0) c.armStall();
  if (!flowing) c.waitForDrain();
  // The read and the reply handed over are traffic. Refreshed after armStall, so
  // that with equal timeouts a stalled client meets the write timeout first.
  c.touch();
}

function onDrain(this: Duplex): void {
  const c = connectionOf(this);
  this.off('drain', onDrain);
  c.untrackedQueued = -1;
  c.touch();
  c.clearStall();
  c.waitingForDrain = false;
  c.resumeIfFree();
}

function onEnd(this: Duplex): void {
  const c = connectionOf(this);
  c.touch();
  if (this.writableLength === 0) c.clearStall();
  c.trace?.peerFin();
  const rest = c.upcaser?.end() ?? EMPTY;
  c.upcaser = null;
  if (rest.length > 0) {
    c.countOut(rest.length);
    c.trace?.send(rest);
    this.end(rest);
  } else {
    this.end();
  }
  // Replies still owed after the peer's FIN must drain in bounded time too; the
  // stall ends when they have (or, at the latest, at the close).
  if (this.writableLength > 0) {
    c.armStall();
    this.once('finish', onFinish);
  }
}

function onFinish(this: Duplex): void {
  connectionOf(this).clearStall();
}

function onError(this: Duplex, err: NodeJS.ErrnoException): void {
  const c = connectionOf(this);
  c.trace?.failed(err);
  countError(c.stats, err.code);
  logConnectionEnd(c.logger, c, 'error', err);
  this.destroy();
}

function onClose(this: Duplex): void {
  const c = connectionOf(this);
  c.settings.closed?.(c);
  c.trace?.closed();
  c.clearStall();
  c.settings.idle?.remove(c);
  c.upcaser = null;
}

const EMPTY = Buffer.alloc(0);

/** performance.now() in whole milliseconds, rounded up. */
const now = (): number => Math.ceil(performance.now());

/**
 * The idle timeout of every connection with the same timeout, on one timer: connections in
 * order of their last traffic (traffic moves one to the back), the timer set for the front
 * one's deadline. native/tcp_serve.c keeps its connections the same way.
 */
class IdleSweep {
  private head: StreamConnection | null = null;
  private tail: StreamConnection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private due = 0;

  constructor(private readonly timeoutMs: number) {}

  add(c: StreamConnection): void {
    c.lastTraffic = now();
    c.idlePrev = this.tail;
    c.idleNext = null;
    if (this.tail !== null) this.tail.idleNext = c;
    else this.head = c;
    this.tail = c;
    c.inIdle = true;
    this.arm(c.lastTraffic + this.timeoutMs);
  }

  remove(c: StreamConnection): void {
    if (!c.inIdle) return;
    if (c.idlePrev !== null) c.idlePrev.idleNext = c.idleNext;
    else this.head = c.idleNext;
    if (c.idleNext !== null) c.idleNext.idlePrev = c.idlePrev;
    else this.tail = c.idlePrev;
    c.idlePrev = c.idleNext = null;
    c.inIdle = false;
  }

  touch(c: StreamConnection): void {
    if (!c.inIdle) return;
    if (this.tail === c) return;
    this.remove(c);
    this.add(c);
  }

  // Arms the timer for `deadline` (performance.now() milliseconds) unless it is due no later.
  private arm(deadline: number): void {
    if (this.timer !== null && this.due <= deadline) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.due = deadline;
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(deadline - performance.now())));
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = null;
    const at = performance.now();
    for (let c = this.head; c !== null && c.lastTraffic + this.timeoutMs <= at; c = this.head) {
      this.remove(c);
      // Destroyed by something else, its 'close' not yet emitted: not an idle timeout.
      if (c.stream.destroyed) continue;
      // A write that made progress since counts as traffic: a full period more.
      if (!c.onIdle()) this.add(c);
    }
    if (this.head !== null) this.arm(this.head.lastTraffic + this.timeoutMs);
  };
}

// One sweep per timeout value (a server has one; tests use a few).
const sweeps = new Map<number, IdleSweep>();
function idleSweep(timeoutMs: number): IdleSweep | null {
  if (!(timeoutMs > 0)) return null;
  let sweep = sweeps.get(timeoutMs);
  if (sweep === undefined) {
    sweep = new IdleSweep(timeoutMs);
    sweeps.set(timeoutMs, sweep);
  }
  return sweep;
}

/** Connection socket #id's steps, and at its close what went through it and why it ended early, if it did. */
class ConnectionTrace {
  private readonly opened = performance.now();
  private bytesIn = 0;
  private bytesOut = 0;
  private error: string | undefined;

  constructor(
    private readonly tracer: Tracer,
    private readonly id: number,
    private readonly transport: 'tcp' | 'tls',
  ) {}

  recv(data: Buffer): void {
    this.bytesIn += data.length;
    this.tracer({ type: 'recv', transport: this.transport, id: this.id, data });
  }

  send(data: Buffer): void {
    this.bytesOut += data.length;
    this.tracer({ type: 'send', transport: this.transport, id: this.id, data });
  }

  peerFin(): void {
    this.tracer({ type: 'peer-fin', transport: this.transport, id: this.id });
  }

  failed(err: NodeJS.ErrnoException): void {
    this.error ??= err.code === 'ECONNRESET' ? 'the client reset the connection (ECONNRESET)' : `error ${err.code ?? err.message}`;
  }

  closed(): void {
    const { id, transport, bytesIn, bytesOut, error } = this;
    this.tracer({ type: 'closed', transport, id, bytesIn, bytesOut, ms: performance.now() - this.opened, error });
  }
}
