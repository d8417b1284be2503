/** Small raw-socket clients for tests: loopback only, every wait bounded. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export { delay };

/** Polls `check` every `everyMs` until it is true; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** Connects, sends `data`, half-closes, and resolves with everything received until the server closes. */
export async function tcpExchange(port: number, data: Buffer | string, timeoutMs = 10_000): Promise<Buffer> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const timer = setTimeout(() => socket.destroy(new Error(`tcp exchange timed out after ${timeoutMs} ms`)), timeoutMs);
  try {
    await once(socket, 'connect');
    socket.end(data);
    await once(socket, 'end');
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return Buffer.concat(chunks);
}

/** One request datagram from a fresh socket; resolves with the reply, or null when none came in `timeoutMs`. */
export async function udpExchange(port: number, data: Buffer | string, timeoutMs = 2000): Promise<Buffer | null> {
  const socket = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const reply = new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      socket.once('message', (msg: Buffer) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
    socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, '127.0.0.1');
    return await reply;
  } finally {
    socket.close();
  }
}

/** The server answers a fresh TCP conversation and a fresh UDP datagram correctly. */
export async function probe(port: number, udp = true): Promise<void> {
  const tcp = await tcpExchange(port, 'probe straße');
  if (tcp.toString() !== 'PROBE STRASSE') throw new Error(`bad tcp probe reply: ${JSON.stringify(tcp.toString())}`);
  if (!udp) return;
  // Retry: the server may be shedding load right now, and UDP may drop.
  for (let attempt = 0; attempt < 5; attempt++) {
    const reply = await udpExchange(port, 'probe ﬃ');
    if (reply !== null) {
      if (reply.toString() !== 'PROBE FFI') throw new Error(`bad udp probe reply: ${JSON.stringify(reply.toString())}`);
      return;
    }
  }
  throw new Error('no udp probe reply');
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

/** Resolves once `socket` has closed, with the time it closed (performance.now ms). */
export function closedAt(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed && socket.closed) resolve(performance.now());
    else socket.once('close', () => resolve(performance.now()));
  });
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
