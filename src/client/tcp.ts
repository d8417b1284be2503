import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type NetworkError, type NetworkLocation, networkError } from '../errors.js';
import { type ReplyCheck, StreamReplyChecker } from './check.js';
import { type ClientOptions, type NormalizedClientOptions, normalizeClientOptions } from './options.js';
import type { TraceEvent, Tracer } from '../trace.js';
import { connectTls } from './tls.js';

/**
 * TCP is a byte stream with no framing, so "one message, one reply" needs an
 * end marker, and the only one the protocol has is end of stream: one
 * connection per message, write it, half-close, read until the server closes.
 * That is what the textbook's TCPClient does too (one sentence per connection).
 */

function where(o: NormalizedClientOptions): NetworkLocation {
  return { transport: o.tls === null ? 'tcp' : 'tls', address: o.host, port: o.port };
}

/**
 * Opens a TCP connection (half-open allowed, so our end of input and the
 * server's are independent). Rejects with a `ConnectError` (refused, …), a
 * `ResolveError` (unknown host) or a `TimeoutError` after `timeout` seconds, naming
 * host, port and transport. With the `tls` option, the connection is TLS and resolves
 * once the server's certificate is verified; see {@link connectTls} for its errors.
 */
export function connectTcp(options: ClientOptions = {}): Promise<net.Socket> {
  return open(normalizeClientOptions(options, 'tcp'));
}

async function open(o: NormalizedClientOptions): Promise<net.Socket> {
  const tracer = o.tracer;
  if (tracer === undefined) return connect(o);
  const server = { address: o.host, port: o.port };
  tracer({ type: 'connect', transport: where(o).transport as 'tcp' | 'tls', server });
  const started = performance.now();
  const socket = await connect(o);
  const local = { address: socket.localAddress ?? '?', port: socket.localPort ?? 0 };
  const remote = { address: socket.remoteAddress ?? o.host, port: socket.remotePort ?? o.port };
  tracer({ type: 'connected', transport: where(o).transport as 'tcp' | 'tls', local, server: remote, ms: performance.now() - started });
  // shutdown(SHUT_WR) happens when end() has flushed what we wrote: 'finish'.
  socket.once('finish', () => tracer({ type: 'client-fin' }));
  socket.once('end', () => tracer({ type: 'server-fin' }));
  socket.once('close', () => tracer({ type: 'client-close' }));
  return socket;
}

function connect(o: NormalizedClientOptions): Promise<net.Socket> {
  if (o.tls !== null) return connectTls(o);
  const socket = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, noDelay: true });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(networkError({ op: 'timeout', phase: 'connect', after: `after ${o.timeout} s` }, where(o)));
    }, o.timeout * 1000);
    timer.unref();
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(networkError({ op: 'connect' }, where(o), err));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Sends one message over its own connection and resolves with the whole reply
 * (everything the server sent before closing).
 *
 * Rejects with a `NetworkError`: as {@link connectTcp}, or a `TimeoutError`
 * when the server is silent for `timeout` seconds while the reply is owed, or a
 * `SocketError` on a reset. If part of the reply had arrived, the error's
 * `received` holds it.
 */
export async function tcpRequest(message: Uint8Array | string, options: ClientOptions = {}): Promise<Buffer> {
  const o = normalizeClientOptions(options, 'tcp');
  const socket = await open(o);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let failure: NetworkError | null = null;
    socket.setTimeout(o.timeout * 1000, () => {
      failure = networkError({ op: 'timeout', phase: 'reply', after: `for ${o.timeout} s` }, where(o));
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      o.tracer?.({ type: 'client-recv', data: chunk });
      chunks.push(chunk);
      received += chunk.length;
    });
    socket.on('error', (err) => {
      failure ??= networkError({ op: 'exchange', received }, where(o), err);
    });
    // Both directions ended (ours by end() below, the server's by its close) or destroyed.
    socket.on('close', () => {
      const reply = Buffer.concat(chunks, received);
      if (failure === null) {
        resolve(reply);
        return;
      }
      if (received > 0) failure.received = reply;
      reject(failure);
    });
    o.tracer?.({ type: 'client-send', data: typeof message === 'string' ? Buffer.from(message) : message });
    socket.end(message);
  });
}

/** What {@link tcpStream} resolves with. */
export interface TcpStreamResult {
  /** Bytes of input sent to the server. */
  bytesSent: number;
  /** Bytes of reply written to the output. */
  bytesReceived: number;
  /** False when the server closed before all of the input was sent. */
  inputComplete: boolean;
  /** Whether the reply was the uppercase of the input sent, computed as both streamed. */
  check: ReplyCheck;
}

/**
 * Streams `input` to the server and the server's bytes to `output`, byte for
 * byte, with backpressure both ways (memory stays flat for any size). At the
 * end of `input` our side is half-closed; the promise settles once the server
 * has closed and `output` has taken everything.
 *
 * `timeout` applies to connecting and, after the end of input, to silence from
 * the server. If the server closes before the input is all sent (the
 * textbook's server reads once and closes), sending stops, `input` is
 * destroyed and `inputComplete` is false. `output` is ended at the end.
 * `check` says whether the reply was the uppercase of what was sent.
 */
export async function tcpStream(input: Readable, output: Writable, options: ClientOptions = {}): Promise<TcpStreamResult> {
  const o = normalizeClientOptions(options, 'tcp');
  const socket = await open(o);
  let inputComplete = false;
  let uploadError: unknown = null;
  const tracer = o.tracer;
  const checker = new StreamReplyChecker();
  const sent = checker.sentTap();
  const upload = (tracer === undefined ? pipeline(input, sent, socket) : pipeline(input, sent, tap(tracer, 'client-send'), socket)).then(
    () => {
      inputComplete = true;
      socket.setTimeout(o.timeout * 1000, () => {
        socket.destroy(networkError({ op: 'timeout', phase: 'reply', after: `for ${o.timeout} s` }, where(o)));
      });
    },
    (err: unknown) => {
      uploadError = err;
    },
  );
  try {
    await (tracer === undefined
      ? pipeline(socket, checker.receivedTap(), output)
      : pipeline(socket, checker.receivedTap(), tap(tracer, 'client-recv'), output));
  } catch (err) {
    if (output.errored) throw output.errored;
    // An input that fails (a read error) takes the socket down with it: report the input's error.
    if (uploadError !== null && input.errored) throw input.errored;
    throw networkError({ op: 'exchange', received: socket.bytesRead }, where(o), err);
  } finally {
    if (!inputComplete) {
      // The server has closed: stop sending whatever input is left.
      socket.destroy();
    }
    await upload;
  }
  return { bytesSent: socket.bytesWritten, bytesReceived: socket.bytesRead, inputComplete, check: checker.result() };
}

/** A pass-through that reports each chunk going by, for the trace. */
function tap(tracer: Tracer, type: 'client-send' | 'client-recv'): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      tracer({ type, data: chunk } as TraceEvent);
      callback(null, chunk);
    },
  });
}
