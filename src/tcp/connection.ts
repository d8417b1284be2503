import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Upcaser } from '../codec/upcase.js';
import { countError, type ServerStats } from '../server/stats.js';

export interface ConnectionOptions {
  stats: ServerStats;
  logger: Logger;
  /**
   * The stream hands us buffers nobody else holds (true for `net.Socket` and
   * `tls.TLSSocket` reads), so ASCII can be uppercased in place. Default false.
   */
  ownsChunks?: boolean;
  /** Milliseconds a client may leave replies unread before it is dropped; 0 disables. */
  writeTimeoutMs?: number;
  /** Fields for this connection's log lines (transport, remote address). */
  logFields?: Record<string, unknown>;
  /** Count payload bytes in `stats.tlsBytesIn/Out` instead of `tcpBytesIn/Out`. Default false. */
  tls?: boolean;
}

/**
 * Serves one upcase conversation over any Duplex: each chunk read is answered
 * at once with its uppercase (no framing, no newline needed), reading pauses
 * while the peer is not reading our replies, and after the peer's end of input
 * everything still owed is sent before we end our side.
 *
 * Faults stay inside this connection: errors are counted and logged at debug
 * level, and the stream is destroyed.
 */
export function handleConnection(stream: Duplex, options: ConnectionOptions): void {
  const { stats, logger } = options;
  const upcaser = new Upcaser();
  const pushOptions = { inPlace: options.ownsChunks === true };
  const writeTimeoutMs = options.writeTimeoutMs ?? 0;
  const bytesIn = options.tls === true ? 'tlsBytesIn' : 'tcpBytesIn';
  const bytesOut = options.tls === true ? 'tlsBytesOut' : 'tcpBytesOut';
  let stallTimer: NodeJS.Timeout | null = null;

  const onStall = (): void => {
    stallTimer = null;
    stats.writeTimeouts++;
    logger.debug({ ...options.logFields, code: 'UPCASE_ERR_TIMEOUT' }, 'client left replies unread; closing');
    stream.destroy();
  };

  stream.on('data', (chunk: Buffer) => {
    stats[bytesIn] += chunk.length;
    const out = upcaser.push(chunk, pushOptions);
    if (out.length === 0) return;
    stats[bytesOut] += out.length;
    if (!stream.write(out)) {
      // Backpressure: stop reading from a client that is not reading from us.
      stream.pause();
      if (writeTimeoutMs > 0 && stallTimer === null) {
        stallTimer = setTimeout(onStall, writeTimeoutMs);
        stallTimer.unref();
      }
    }
  });

  stream.on('drain', () => {
    if (stallTimer !== null) {
      clearTimeout(stallTimer);
      stallTimer = null;
    }
    stream.resume();
  });

  stream.on('end', () => {
    const rest = upcaser.end();
    if (rest.length > 0) {
      stats[bytesOut] += rest.length;
      stream.end(rest);
    } else {
      stream.end();
    }
  });

  stream.on('error', (err: NodeJS.ErrnoException) => {
    countError(stats, err.code);
    logger.debug({ ...options.logFields, code: err.code, err: err.message }, 'connection error');
    stream.destroy();
  });

  stream.on('close', () => {
    if (stallTimer !== null) clearTimeout(stallTimer);
  });
}
