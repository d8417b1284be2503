import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { within } from '../helpers/net.js';

export const MiB = 1024 * 1024;

/**
 * A TLS (or plain) socket that collects what it receives. `done` resolves when
 * the server has ended its side (or the socket closed): with half-open sockets
 * a server's close shows as an end.
 */
export class Collector {
  private chunks: Buffer[] = [];
  size = 0;
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | null = null;
  readonly done: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (this.error = err));
    this.done = new Promise((resolve) => {
      socket.once('end', () => {
        this.ended = true;
        resolve();
      });
      socket.once('close', () => {
        this.closed = true;
        resolve();
      });
    });
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  /** Waits until `n` bytes have come (fails on close or after `ms`). */
  async waitForBytes(n: number, ms = 10_000): Promise<Buffer> {
    await within(
      ms,
      `${n} bytes (have ${this.size})`,
      (async () => {
        while (this.size < n && !this.closed && !this.ended) await new Promise((r) => setTimeout(r, 5));
      })(),
    );
    if (this.size < n) throw new Error(`closed after ${this.size} of ${n} bytes${this.error ? `: ${this.error.message}` : ''}`);
    return this.received;
  }

  /** Waits for the server's end of stream (or a close). */
  async waitForClose(ms = 10_000): Promise<Buffer> {
    await within(ms, 'the server closing', this.done);
    return this.received;
  }

  write(data: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }
}

export interface TlsConnectOptions {
  ca: string;
  servername?: string;
  maxVersion?: tls.SecureVersion;
}

/** A verified TLS connection to 127.0.0.1:`port`, half-open allowed. */
export async function tlsConnect(port: number, options: TlsConnectOptions): Promise<Collector & { socket: tls.TLSSocket }> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: readFileSync(options.ca),
    servername: options.servername ?? 'localhost',
    maxVersion: options.maxVersion,
    allowHalfOpen: true,
  } as tls.ConnectionOptions);
  const collector = new Collector(socket);
  await within(
    10_000,
    `TLS connect to ${port}`,
    Promise.race([
      once(socket, 'secureConnect'),
      once(socket, 'close').then(() => {
        throw collector.error ?? new Error('closed before the handshake');
      }),
    ]),
  );
  return collector as Collector & { socket: tls.TLSSocket };
}

/** Sends `data` over TLS, half-closes, returns everything until the server closes. */
export async function tlsRoundTrip(port: number, data: Uint8Array | string, options: TlsConnectOptions): Promise<Buffer> {
  const client = await tlsConnect(port, options);
  client.socket.end(data);
  const out = await client.waitForClose(30_000);
  if (client.error) throw client.error;
  if (!client.ended) throw new Error('the server closed without ending the TLS stream');
  return out;
}

/** A plain TCP connection to 127.0.0.1:`port`. */
export async function rawConnect(port: number): Promise<Collector> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await within(10_000, `connect to ${port}`, once(socket, 'connect'));
  return new Collector(socket);
}
