import type { Duplex } from 'node:stream';
import { ProxyProtocolError } from '../errors.js';
import { type ProxyHeader, ProxyHeaderReader } from './header.js';

export type ProxyHeaderResult =
  | { ok: true; header: ProxyHeader }
  | {
      ok: false;
      reason: 'missing' | 'malformed' | 'too_large' | 'truncated' | 'timeout';
      message: string;
      /** Bytes received before giving up. */
      bytes: number;
      /** The stream error, when the stream failed before the header was complete. */
      error?: NodeJS.ErrnoException;
    };

/**
 * Reads a PROXY header from the start of any Duplex, then hands over.
 *
 * On success the bytes that followed the header (possibly in the same read) are
 * put back with `stream.unshift()` and the stream is left **paused**: the
 * callback attaches the connection handler, then calls `stream.resume()`.
 * On failure (bad header, end of stream or error mid-header, no header within
 * `timeoutMs`) the callback decides what to do; it should destroy the stream.
 * The callback is called exactly once.
 */
export function readProxyHeader(stream: Duplex, timeoutMs: number, done: (result: ProxyHeaderResult) => void): void {
  const reader = new ProxyHeaderReader();
  let received = 0;
  let settled = false;

  const finish = (result: ProxyHeaderResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('close', onEnd);
    stream.off('error', onError);
    done(result);
  };

  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    let parsed: ReturnType<ProxyHeaderReader['push']>;
    try {
      parsed = reader.push(chunk);
    } catch (err) {
      if (!(err instanceof ProxyProtocolError)) throw err;
      finish({ ok: false, reason: err.reason, message: err.message, bytes: received });
      return;
    }
    if (parsed === null) return;
    stream.pause();
    if (parsed.rest.length > 0) stream.unshift(parsed.rest);
    finish({ ok: true, header: parsed.header });
  };
  const onEnd = (): void => {
    // "The receiver must also reject incoming connections containing partial protocol headers."
    finish({ ok: false, reason: 'truncated', message: `connection ended after ${received} bytes of a PROXY header`, bytes: received });
  };
  const onError = (error: NodeJS.ErrnoException): void => {
    finish({
      ok: false,
      reason: 'truncated',
      message: `connection failed (${error.code ?? error.message}) before a complete PROXY header`,
      bytes: received,
      error,
    });
  };

  const timer = setTimeout(() => {
    finish({ ok: false, reason: 'timeout', message: `no complete PROXY header within ${timeoutMs} ms`, bytes: received });
  }, timeoutMs);
  timer.unref();
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('close', onEnd);
  stream.on('error', onError);
}
