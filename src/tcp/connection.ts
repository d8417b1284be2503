import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Upcaser } from '../codec/upcase.js';
import { countError, type ServerStats } from '../server/stats.js';
import type { Tracer } from '../trace.js';

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
   * Milliseconds replies may stay owed (the transport is backed up because the
   * peer does not read) before the connection is reset; 0 disables. Default 0.
   */
  writeTimeoutMs?: number;
  /** Fields for this connection's log lines (transport, remote address). Never payload. */
  logFields?: Record<string, unknown>;
  /** Count payload bytes in `stats.tlsBytesIn/Out` instead of `tcpBytesIn/Out`. Default false. */
  tls?: boolean;
  /** Reports each read, reply, FIN and the close (`upcase serve --trace`), as connection socket #`id`. */
  trace?: { tracer: Tracer; id: number };
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
  const touch = (): void => {
    idleTimer?.refresh();
  };
  const onWritten = (err?: Error | null): void => {
    if (err == null) {
      untrackedQueued = -1;
      touch();
    }
  };

  const onStall = (): void => {
    stallTimer = null;
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
    stats[bytesIn] += chunk.length;
    // Before push: it may uppercase the chunk in place.
    trace?.recv(chunk);
    const out = upcaser.push(chunk, pushOptions);
    if (out.length === 0) {
      touch();
      return;
    }
    stats[bytesOut] += out.length;
    trace?.send(out);
    // Write completion counts as traffic for the idle timer, but a completion
    // callback costs a tick per reply, so ask for one only when earlier writes are
    // still queued (this one will complete after them). A write into an empty queue
    // almost always completes at once; when it does not, onIdle checks its progress.
    const queued = stream.writableLength > 0;
    const flowing = stream.write(out, queued ? onWritten : undefined);
    if (!queued && stream.writableLength > 0 && untrackedQueued < 0) untrackedQueued = stream.writableLength;
    if (!flowing) {
      // Backpressure: stop reading from a client that is not reading from us.
      stream.pause();
      armStall();
    }
    // The read and the reply handed over are traffic. Refreshed after armStall, so
    // that with equal timeouts a stalled client meets the write timeout first.
    touch();
  });

  stream.on('drain', () => {
    untrackedQueued = -1;
    touch();
    clearStall();
    stream.resume();
  });

  stream.on('end', () => {
    touch();
    trace?.peerFin();
    const rest = upcaser.end();
    if (rest.length > 0) {
      stats[bytesOut] += rest.length;
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
