import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import type { ServerOptions } from '../../src/options.js';

/** A server on 127.0.0.1, a free port, closed when the test ends. */
export async function serverFor(
  t: TestContext | { after: (fn: () => unknown) => void },
  options: ServerOptions = {},
): Promise<UpcaseServer> {
  const server = await startServer({ host: '127.0.0.1', port: 0, ...options });
  t.after(() => server.close());
  return server;
}

/** Fails the wait, not the process, after `ms`. */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A connected TCP socket that collects everything it receives. */
export class TcpClient {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  private size = 0;
  private waiters: Array<() => void> = [];
  ended = false;
  closed = false;
  error: Error | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async connect(port: number, host = '127.0.0.1', options: { allowHalfOpen?: boolean } = {}): Promise<TcpClient> {
    const socket = net.connect({ port, host, allowHalfOpen: options.allowHalfOpen ?? false });
    const client = new TcpClient(socket);
    await within(10_000, `connect to ${host}:${port}`, once(socket, 'connect'));
    return client;
  }

  /** Everything received so far. */
  get received(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  get receivedBytes(): number {
    return this.size;
  }

  /** Waits until at least `n` bytes have arrived in total. */
  async waitForBytes(n: number, ms = 10_000): Promise<Buffer> {
    await within(
      ms,
      `${n} bytes (have ${this.size})`,
      this.until(() => this.size >= n || this.closed),
    );
    if (this.size < n) throw new Error(`connection closed after ${this.size} of ${n} bytes${this.error ? `: ${this.error.message}` : ''}`);
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

/** Sends `data`, half-closes, and returns everything until the server closes. */
export async function tcpRoundTrip(port: number, data: Uint8Array | string, host = '127.0.0.1', ms = 20_000): Promise<Buffer> {
  const client = await TcpClient.connect(port, host);
  try {
    client.socket.end(data);
    const out = await client.waitForClose(ms);
    if (client.error) throw client.error;
    assertEnded(client);
    return out;
  } finally {
    client.destroy();
  }
}

function assertEnded(client: TcpClient): void {
  if (!client.ended) throw new Error('the server closed without sending FIN');
}

/** A UDP socket bound to an ephemeral port that can wait for replies. */
export class UdpClient {
  readonly socket: dgram.Socket;
  private messages: Buffer[] = [];
  private waiter: (() => void) | null = null;

  private constructor(socket: dgram.Socket) {
    this.socket = socket;
    socket.on('message', (msg) => {
      this.messages.push(msg);
      this.waiter?.();
    });
  }

  static async open(type: 'udp4' | 'udp6' = 'udp4'): Promise<UdpClient> {
    const socket = dgram.createSocket({ type, recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    const client = new UdpClient(socket);
    await new Promise<void>((resolve) => socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', resolve));
    return client;
  }

  send(data: Uint8Array | string, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, port, host, (err) => (err ? reject(err) : resolve())));
  }

  /** The next reply datagram; fails after `ms`. */
  async next(ms = 5_000): Promise<Buffer> {
    if (this.messages.length === 0) {
      await within(ms, 'a UDP reply', new Promise<void>((resolve) => (this.waiter = resolve)));
      this.waiter = null;
    }
    return this.messages.shift()!;
  }

  /** Datagrams received and not yet taken. */
  get pending(): number {
    return this.messages.length;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Whether this host can bind ::1 at all (IPv6 loopback). */
export async function ipv6LoopbackAvailable(): Promise<boolean> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(0, '::1', resolve);
    });
    return true;
  } catch {
    return false;
  } finally {
    if (probe.listening) await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
}

/** Waits for 'drain' on a writer, giving up after `ms` or when the socket closes; leaves no listeners behind. */
export function waitForDrain(socket: net.Socket, ms: number): Promise<'drain' | 'close' | 'timeout'> {
  return new Promise((resolve) => {
    const finish = (how: 'drain' | 'close' | 'timeout'): void => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(how);
    };
    const onDrain = (): void => finish('drain');
    const onClose = (): void => finish('close');
    const timer = setTimeout(() => finish('timeout'), ms);
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/** Polls `condition` every 10 ms until it holds; fails after `ms`. */
export async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  await within(
    ms,
    what,
    (async () => {
      while (!condition()) await delay(10);
    })(),
  );
}
