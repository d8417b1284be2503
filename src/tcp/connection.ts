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
 * Serves one upcase conversation over any Duplex: each chunk read is answered
 * at once with its uppercase (no framing, no newline needed), reading pauses
 * while the peer is not reading our replies, and after the peer's end of input
 * everything still owed is sent before we end our side.
 *
 * Faults stay inside this connection: errors are counted and logged at debug
 * level, and the stream is destroyed. Memory per connection is bounded by the
 * stream's buffers plus one reply (at most 3× one read).
 */
export function handleConnection(stream: Duplex, options: ConnectionOptions): void {
  const { stats, logger } = options;
  const upcaser = new Upcaser();
  const pushOptions = { inPlace: options.ownsChunks === true };
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  const writeTimeoutMs = options.writeTimeoutMs ?? 0;
  const bytesIn = options.tls === true ? 'tlsBytesIn' : 'tcpBytesIn';
  const bytesOut = options.tls === true ? 'tlsBytesOut' : 'tcpBytesOut';
  let idleTimer: NodeJS.Timeout | null = null;
  let stallTimer: NodeJS.Timeout | null = null;
  // Bytes queued by a write that went asynchronous without a completion callback
  // (see the 'data' handler); -1 when there is none.
  let untrackedQueued = -1;
  // Why reading is paused: the peer is not reading our replies, and/or this turn of the
  // event loop has no time left (turnSpent). It resumes when neither holds.
  let waitingForDrain = false;
  let yielding = false;
  const resumeIfFree = (): void => {
    if (!waitingForDrain && !yielding) stream.resume();
  };
  const nextTurn = (): void => {
    yielding = false;
    resumeIfFree();
  };

  // Our own idle timer rather than net.Socket#setTimeout: that one, when a write
  // is stuck, lets a first expiry pass if the write queue shrank since the write
  // was queued, so a silent connection could live up to twice the timeout.
  const onIdle = (): void => {
    if (untrackedQueued >= 0 && stream.writableLength < untrackedQueued) {
      // That write made progress at some point since: traffic, so wait a full period more.
      untrackedQueued = stream.writableLength > 0 ? stream.writableLength : -1;
      idleTimer?.refresh();
      return;
    }
    idleTimer = null;
    stats.idleTimeouts++;
    logger.debug({ ...options.logFields, code: 'UPCASE_ERR_TIMEOUT' }, 'idle timeout; closing');
    stream.destroy();
  };
  const counters = options.counters;
  const touch = (): void => {
    idleTimer?.refresh();
    if (counters !== undefined) counters.lastActive = Date.now();
  };
  const onWritten = (err?: Error | null): void => {
    if (err == null) {
      untrackedQueued = -1;
      touch();
      if (stream.writableLength === 0) clearStall();
    }
  };

  // The write timer runs while replies are owed that the transport has not passed
  // to the kernel (writableLength > 0), as native/tcp_serve.c runs it while the
  // kernel refuses bytes; docs/protocol.md has the table both follow.
  const onStall = (): void => {
    stallTimer = null;
    // Everything owed went out after all (a write that completed without a callback).
    if (stream.writableLength === 0) return;
    stats.writeTimeouts++;
    logger.debug({ ...options.logFields, code: 'UPCASE_ERR_TIMEOUT' }, 'client left replies unread; closing');
    // Reset rather than close: the peer is not reading, so a FIN would only queue
    // behind replies it will never take, keeping kernel buffers busy for minutes.
    const resettable = stream as Resettable;
    try {
      if (typeof resettable.resetAndDestroy === 'function') resettable.resetAndDestroy();
    } catch {
      // Only plain TCP handles can be reset (a TLSSocket throws ERR_INVALID_HANDLE_TYPE).
    }
    stream.destroy();
  };
  const armStall = (): void => {
    if (writeTimeoutMs > 0 && stallTimer === null) {
      stallTimer = setTimeout(onStall, writeTimeoutMs);
      stallTimer.unref();
    }
  };
  const clearStall = (): void => {
    if (stallTimer !== null) {
      clearTimeout(stallTimer);
      stallTimer = null;
    }
  };

  if (idleTimeoutMs > 0) {
    idleTimer = setTimeout(onIdle, idleTimeoutMs);
    idleTimer.unref();
  }

  const trace =
    options.trace === undefined ? null : new ConnectionTrace(options.trace.tracer, options.trace.id, options.tls === true ? 'tls' : 'tcp');

  stream.on('data', (chunk: Buffer) => {
    if (chunk.length >= SMALL_CHUNK && turnSpent()) {
      // Other connections, and the listener's next accept, go first: this chunk waits for
      // the next turn, in front of whatever else this connection has sent. A small chunk
      // never waits: it costs next to nothing, and it is how interactive clients' requests
      // come (a read returns all a sender has queued, so a bulk sender's chunks are large).
      stream.pause();
      stream.unshift(chunk);
      if (!yielding) {
        yielding = true;
        setImmediate(nextTurn);
      }
      return;
    }
    stats[bytesIn] += chunk.length;
    if (counters !== undefined) counters.bytesIn += chunk.length;
    // Before push: it may uppercase the chunk in place.
    trace?.recv(chunk);
    const out = upcaser.push(chunk, pushOptions);
    if (out.length === 0) {
      touch();
      return;
    }
    stats[bytesOut] += out.length;
    if (counters !== undefined) counters.bytesOut += out.length;
    trace?.send(out);
    // Write completion counts as traffic for the idle timer, but a completion
    // callback costs a tick per reply, so ask for one only when earlier writes are
    // still queued (this one will complete after them). A write into an empty queue
    // almost always completes at once; when it does not, onIdle checks its progress.
    const queued = stream.writableLength > 0;
    // Nothing was owed until this reply: any earlier stall has ended.
    if (!queued) clearStall();
    const flowing = stream.write(out, queued ? onWritten : undefined);
    if (!queued && stream.writableLength > 0 && untrackedQueued < 0) untrackedQueued = stream.writableLength;
    // Bytes the kernel did not take at once are owed from now on.
    if (stream.writableLength > 0) armStall();
    if (!flowing) {
      // Backpressure: stop reading from a client that is not reading from us.
      waitingForDrain = true;
      stream.pause();
    }
    // The read and the reply handed over are traffic. Refreshed after armStall, so
    // that with equal timeouts a stalled client meets the write timeout first.
    touch();
  });

  stream.on('drain', () => {
    untrackedQueued = -1;
    touch();
    clearStall();
    waitingForDrain = false;
    resumeIfFree();
  });

  stream.on('end', () => {
    touch();
    if (stream.writableLength === 0) clearStall();
    trace?.peerFin();
    const rest = upcaser.end();
    if (rest.length > 0) {
      stats[bytesOut] += rest.length;
      if (counters !== undefined) counters.bytesOut += rest.length;
      trace?.send(rest);
      stream.end(rest);
    } else {
      stream.end();
    }
    // Replies still owed after the peer's FIN must drain in bounded time too.
    if (stream.writableLength > 0) armStall();
  });

  stream.on('finish', clearStall);

  stream.on('error', (err: NodeJS.ErrnoException) => {
    trace?.failed(err);
    countError(stats, err.code);
    logger.debug({ ...options.logFields, code: err.code, err: err.message }, 'connection error');
    stream.destroy();
  });

  stream.on('close', () => {
    trace?.closed();
    clearStall();
    if (idleTimer !== null) clearTimeout(idleTimer);
    idleTimer = null;
  });
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
