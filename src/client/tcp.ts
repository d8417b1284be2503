import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatHostPort, type NetworkError, TimeoutError } from '../errors.js';
import { type ReplyCheck, StreamReplyChecker } from './check.js';
import { connectError, IncompleteReplyError, socketError } from './errors.js';
import { type ClientOptions, type NormalizedClientOptions, normalizeClientOptions } from './options.js';
import { connectTls } from './tls.js';

/**
 * TCP is a byte stream with no framing, so "one message, one reply" needs an
 * end marker, and the only one the protocol has is end of stream: one
 * connection per message, write it, half-close, read until the server closes.
 * That is what the textbook's TCPClient does too (one sentence per connection).
 */

function where(o: NormalizedClientOptions): { transport: 'tcp' | 'tls'; address: string; port: number } {
  return { transport: o.tls === null ? 'tcp' : 'tls', address: o.host, port: o.port };
}

/** `127.0.0.1:12000 (tcp)`, for messages. */
function named(o: NormalizedClientOptions): string {
  return `${formatHostPort(o.host, o.port)} (${where(o).transport})`;
}

/**
 * Opens a TCP connection (half-open allowed, so our end of input and the
 * server's are independent). Rejects with `UPCASE_ERR_CONNECT` (refused,
 * unknown host, …) or `UPCASE_ERR_TIMEOUT` after `timeout` ms, naming host,
 * port and transport. With the `tls` option, the connection is TLS and resolves
 * once the server's certificate is verified; see {@link connectTls} for its errors.
 */
export function connectTcp(options: ClientOptions = {}): Promise<net.Socket> {
  return open(normalizeClientOptions(options, 'tcp'));
}

function open(o: NormalizedClientOptions): Promise<net.Socket> {
  if (o.tls !== null) return connectTls(o);
  const socket = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, noDelay: true });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TimeoutError(`timed out connecting to ${formatHostPort(o.host, o.port)} (tcp) after ${o.timeout} ms`, where(o)));
    }, o.timeout);
    timer.unref();
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(connectError(err, 'tcp', o.host, o.port));
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
 * Rejects with a `NetworkError`: `UPCASE_ERR_CONNECT`, or `UPCASE_ERR_TIMEOUT`
 * when the server is silent for `timeout` ms while the reply is owed, or
 * `UPCASE_ERR_SOCKET` on a reset. If part of the reply had arrived, the error
 * is an {@link IncompleteReplyError} carrying it.
 */
export async function tcpRequest(message: Uint8Array | string, options: ClientOptions = {}): Promise<Buffer> {
  const o = normalizeClientOptions(options, 'tcp');
  const socket = await open(o);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let failure: NetworkError | null = null;
    socket.setTimeout(o.timeout, () => {
      failure = new TimeoutError(`no reply from ${named(o)} for ${o.timeout} ms`, where(o));
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
    });
    socket.on('error', (err) => {
      failure ??= socketError(err, where(o).transport, o.host, o.port, received);
    });
    // Both directions ended (ours by end() below, the server's by its close) or destroyed.
    socket.on('close', () => {
      const reply = Buffer.concat(chunks, received);
      if (failure === null) resolve(reply);
      else reject(received > 0 ? new IncompleteReplyError(failure, reply) : failure);
    });
    socket.end(message);
  });
}

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
  const checker = new StreamReplyChecker();
  const upload = pipeline(input, checker.sentTap(), socket).then(
    () => {
      inputComplete = true;
      socket.setTimeout(o.timeout, () => {
        socket.destroy(new TimeoutError(`no reply from ${named(o)} for ${o.timeout} ms`, where(o)));
      });
    },
    (err: unknown) => {
      uploadError = err;
    },
  );
  try {
    await pipeline(socket, checker.receivedTap(), output);
  } catch (err) {
    if (output.errored) throw output.errored;
    // An input that fails (a read error) takes the socket down with it: report the input's error.
    if (uploadError !== null && input.errored) throw input.errored;
    throw socketError(err, where(o).transport, o.host, o.port, socket.bytesRead);
  } finally {
    if (!inputComplete) {
      // The server has closed: stop sending whatever input is left.
      socket.destroy();
    }
    await upload;
  }
  return { bytesSent: socket.bytesWritten, bytesReceived: socket.bytesRead, inputComplete, check: checker.result() };
}
