/**
 * The one way tests talk to a server from outside: raw TCP, TLS and UDP sockets
 * on loopback that collect what they receive, and round trips built on them.
 * Every wait is bounded (test/helpers/wait.ts).
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { delay, within } from './wait.js';

export const MiB = 1024 * 1024;

export interface TcpConnectOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** The client's source address (127.0.0.0/8 holds many). */
  localAddress?: string;
  /** Keep our side open after the server's FIN. Default false. */
  allowHalfOpen?: boolean;
  noDelay?: boolean;
}

/**
 * A client socket (TCP or TLS) that collects everything it receives and can
 * wait for a byte count, the server's end of stream, or the close.
 */
export class TcpPeer {
  private chunks: Buffer[] = [];
  private waiters: Array<() => void> = [];
  /** Bytes received so far. */
  size = 0;
  /** The server's FIN (or TLS close_notify) arrived. */
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** A plain TCP connection to `port`, once connected. */
  static async connect(port: number, options: TcpConnectOptions = {}): Promise<TcpPeer> {
    const host = options.host ?? '127.0.0.1';
    const socket = net.connect({
      port,
      host,
      allowHalfOpen: options.allowHalfOpen ?? false,
      localAddress: options.localAddress,
      noDelay: options.noDelay,
    });
    const peer = new TcpPeer(socket);
    await within(10_000, `connect to ${host}:${port}`, once(socket, 'connect'));
    return peer;
  }

  /** A verified TLS connection to 127.0.0.1:`port`, half-open allowed, once the handshake is done. */
  static async tls(port: number, options: TlsConnectOptions): Promise<TcpPeer & { socket: tls.TLSSocket }> {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(options.ca),
      servername: options.servername ?? 'localhost',
      maxVersion: options.maxVersion,
      allowHalfOpen: true,
      // tls.connect passes localAddress on to net.connect; @types/node does not list it.
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    } as tls.ConnectionOptions);
    const peer = new TcpPeer(socket);
    await handshake(peer, socket, `TLS connect to ${port}`);
    return peer as TcpPeer & { socket: tls.TLSSocket };
  }

  /** Everything received so far. */
  get received(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Waits until at least `n` bytes have arrived in total; fails if the stream ends first. */
  async waitForBytes(n: number, ms = 10_000): Promise<Buffer> {
    await within(
      ms,
      `${n} bytes (have ${this.size})`,
      this.until(() => this.size >= n || this.ended || this.closed),
    );
    if (this.size < n) throw new Error(`the stream ended after ${this.size} of ${n} bytes${this.error ? `: ${this.error.message}` : ''}`);
    return this.received;
  }

  /** Waits for the server's end of stream, or the close (the only sign a half-open socket gets of a reset). */
  async waitForEnd(ms = 10_000): Promise<Buffer> {
    await within(
      ms,
      'the server ending the stream',
      this.until(() => this.ended || this.closed),
    );
    return this.received;
  }

  /** Waits for the socket to close (the server's FIN ends our side too, unless allowHalfOpen). */
  async waitForClose(ms = 10_000): Promise<Buffer> {
    await within(
      ms,
      'connection close',
      this.until(() => this.closed),
    );
    return this.received;
  }

  write(data: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (condition()) resolve();
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Resolves when `socket`'s TLS handshake is done; fails if it closes first. */
function handshake(peer: TcpPeer, socket: tls.TLSSocket, what: string): Promise<unknown> {
  return within(
    10_000,
    what,
    Promise.race([
      once(socket, 'secureConnect'),
      once(socket, 'close').then(() => {
        throw peer.error ?? new Error('closed before the TLS handshake');
      }),
    ]),
  );
}

/** A TLS client over an already connected `tcp` socket (after a PROXY header, say). */
export async function tlsOver(tcp: net.Socket, ca: Buffer): Promise<TcpPeer & { socket: tls.TLSSocket }> {
  const socket = tls.connect({ socket: tcp, ca, servername: 'localhost', allowHalfOpen: true } as tls.ConnectionOptions);
  const peer = new TcpPeer(socket);
  await handshake(peer, socket, 'TLS handshake');
  return peer as TcpPeer & { socket: tls.TLSSocket };
}

export interface TlsConnectOptions {
  /** The CA file that signed the server's certificate. */
  ca: string;
  servername?: string;
  maxVersion?: tls.SecureVersion;
  localAddress?: string;
}

/**
 * One TCP conversation: connects, sends `data`, half-closes, and resolves with
 * everything received until the server closes. Fails on an error, on a close
 * without the server's FIN, or after `timeoutMs`.
 */
export async function tcpRoundTrip(
  port: number,
  data: Uint8Array | string,
  options: TcpConnectOptions & { timeoutMs?: number } = {},
): Promise<Buffer> {
  const peer = await TcpPeer.connect(port, options);
  try {
    peer.socket.end(data);
    const out = await peer.waitForClose(options.timeoutMs ?? 20_000);
    if (peer.error) throw peer.error;
    if (!peer.ended) throw new Error('the server closed without sending FIN');
    return out;
  } finally {
    peer.destroy();
  }
}

/** {@link tcpRoundTrip} over TLS: sends `data`, half-closes, returns everything until the server ends the stream. */
export async function tlsRoundTrip(port: number, data: Uint8Array | string, options: TlsConnectOptions): Promise<Buffer> {
  const peer = await TcpPeer.tls(port, options);
  try {
    peer.socket.end(data);
    const out = await peer.waitForEnd(30_000);
    if (peer.error) throw peer.error;
    if (!peer.ended) throw new Error('the server closed without ending the TLS stream');
    return out;
  } finally {
    peer.destroy();
  }
}

/** A UDP socket bound to an ephemeral port on loopback that queues the datagrams it receives. */
export class UdpPeer {
  private messages: Buffer[] = [];
  private waiter: (() => void) | null = null;

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      this.messages.push(msg);
      this.waiter?.();
    });
    // ICMP errors surface as socket errors on some paths; a bounded wait handles them.
    socket.on('error', () => undefined);
  }

  /** Binds 127.0.0.1 (or ::1 for udp6, or `address`). */
  static async open(type: 'udp4' | 'udp6' = 'udp4', address = type === 'udp4' ? '127.0.0.1' : '::1'): Promise<UdpPeer> {
    const socket = dgram.createSocket({ type, recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    const peer = new UdpPeer(socket);
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return peer;
  }

  send(data: Uint8Array | string, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram received; fails after `ms`. */
  async next(ms = 5_000): Promise<Buffer> {
    if (this.messages.length === 0) {
      await within(ms, 'a UDP reply', new Promise<void>((resolve) => (this.waiter = resolve)));
      this.waiter = null;
    }
    return this.messages.shift()!;
  }

  /** One request: drops what is queued, sends, and returns the next datagram, or null after `ms`. */
  async request(port: number, data: Uint8Array | string, ms = 1000): Promise<Buffer | null> {
    this.messages.length = 0;
    await this.send(data, port);
    return this.next(ms).catch(() => null);
  }

  /** Datagrams received and not yet taken. */
  get pending(): number {
    return this.messages.length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** One datagram from a fresh socket: the reply, or null when none came in `timeoutMs`. */
export async function udpExchange(port: number, data: Uint8Array | string, timeoutMs = 2000): Promise<Buffer | null> {
  const peer = await UdpPeer.open();
  try {
    return await peer.request(port, data, timeoutMs);
  } finally {
    await peer.close();
  }
}

/** A UDP request and its reply, tried `attempts` times a second apart (UDP may drop); fails if none came. */
export async function udpRoundTrip(port: number, data: Uint8Array | string, attempts = 5): Promise<Buffer> {
  const peer = await UdpPeer.open();
  try {
    for (let i = 0; i < attempts; i++) {
      const reply = await peer.request(port, data, 1000);
      if (reply !== null) return reply;
    }
    throw new Error(`no UDP reply from port ${port} in ${attempts} tries`);
  } finally {
    await peer.close();
  }
}

/** The server answers a fresh TCP conversation and (unless `udp` is false) a fresh UDP datagram correctly. */
export async function probe(port: number, udp = true): Promise<void> {
  const tcp = await tcpRoundTrip(port, 'probe straße', { timeoutMs: 10_000 });
  if (tcp.toString() !== 'PROBE STRASSE') throw new Error(`bad tcp probe reply: ${JSON.stringify(tcp.toString())}`);
  if (!udp) return;
  // Retried: the server may be shedding load right now, and UDP may drop.
  const reply = await udpRoundTrip(port, 'probe ﬃ');
  if (reply.toString() !== 'PROBE FFI') throw new Error(`bad udp probe reply: ${JSON.stringify(reply.toString())}`);
}

/** {@link probe}, retried until it passes or `timeoutMs` ends: for a server that is still freeing slots. */
export async function probeUntilServed(port: number, udp = true, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      await probe(port, udp);
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await delay(50);
    }
  }
}

/** Runs `fn` over `items` with at most `limit` at once (a bounded crowd of clients). */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

/** Whether this host can bind ::1 at all (IPv6 loopback). */
export async function ipv6LoopbackAvailable(): Promise<boolean> {
  const probeServer = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probeServer.once('error', reject);
      probeServer.listen(0, '::1', resolve);
    });
    return true;
  } catch {
    return false;
  } finally {
    if (probeServer.listening) await new Promise<void>((resolve) => probeServer.close(() => resolve()));
  }
}

export interface FloodResult {
  /** Bytes handed to the socket. */
  sent: number;
  /** performance.now() of the last write progress (the last 'drain'). */
  lastProgress: number;
  /** True when writes stopped draining for `quietMs` (backpressure held). */
  stalled: boolean;
}

/**
 * A hostile client that never reads: writes `chunk` over and over until
 * `maxBytes` are sent, writes stop draining for `quietMs`, `timeoutMs` passes,
 * or the socket closes. It pauses the socket so replies pile up unread.
 */
export async function floodWithoutReading(
  socket: net.Socket,
  { chunk = Buffer.alloc(64 * 1024, 'a'), maxBytes = 1 << 30, quietMs = 1000, timeoutMs = 20_000 } = {},
): Promise<FloodResult> {
  socket.pause();
  const end = performance.now() + timeoutMs;
  let sent = 0;
  let lastProgress = performance.now();
  while (!socket.destroyed && sent < maxBytes && performance.now() < end) {
    while (sent < maxBytes && socket.write(chunk)) sent += chunk.length;
    if (sent >= maxBytes) break;
    sent += chunk.length;
    lastProgress = performance.now();
    const drained = await Promise.race([
      once(socket, 'drain').then(
        () => true,
        () => false,
      ),
      once(socket, 'close').then(
        () => false,
        () => false,
      ),
      delay(quietMs, false, { ref: false }),
    ]);
    if (!drained) return { sent, lastProgress, stalled: !socket.destroyed };
  }
  return { sent, lastProgress, stalled: false };
}
