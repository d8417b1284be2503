/**
 * Idle and write timeouts over real sockets, on both TCP transports. The idle
 * timeout must fire within ±10%, measured from the last byte exchanged; a client
 * that stops reading while replies are owed is closed in bounded time.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { floodWithoutReading } from '../helpers/roundtrip.js';
import { closedAt, delay, until } from '../helpers/wait.js';

const TRANSPORTS = ['native', 'stream'] as const;

// Long enough that ±10% (300 ms) absorbs scheduling noise on a loaded machine.
const IDLE_S = 3;

type Connect = (port: number) => Promise<net.Socket>;

/** Runs `body` with a fresh server and a `connect` whose sockets are all destroyed afterwards. */
async function withServer(
  options: Parameters<typeof startServer>[0],
  body: (server: UpcaseServer, connect: Connect) => Promise<void>,
): Promise<void> {
  const server = await startServer({ host: '127.0.0.1', port: 0, udp: false, ...options });
  if (options?.tcpTransport !== undefined) assert.equal(server.tcpTransport, options.tcpTransport);
  const clients = new Set<net.Socket>();
  const connect: Connect = async (port) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    clients.add(socket);
    socket.on('error', () => {});
    await once(socket, 'connect');
    return socket;
  };
  try {
    await body(server, connect);
  } finally {
    for (const socket of clients) socket.destroy();
    await server.close();
  }
}

interface ServerSide {
  /** performance.now() of the last read or drain on the server's end of the connection. */
  lastActivity: number;
  closed: Promise<number>;
}

/**
 * Watches the server's end of the next connection, so a timeout can be timed
 * from the server's own last activity: a client cannot see when the server last
 * read or flushed, least of all on a loaded machine. The native transport has no
 * net.Socket to watch, so there it is seen from the flooding client: its last
 * write that made progress (the server stops reading once a reply is owed; what
 * the kernel buffers after that takes milliseconds on loopback), and its close.
 */
async function stalledServerSide(server: UpcaseServer, socket: Promise<net.Socket>): Promise<ServerSide> {
  if (server.tcpTransport === 'stream') {
    const side = nextServerSide(server);
    await floodUntilClosed(await socket);
    return side;
  }
  const client = await socket;
  const closed = closedAt(client);
  const { lastProgress } = await floodWithoutReading(client, { quietMs: 20_000, timeoutMs: 20_000 });
  return { lastActivity: lastProgress, closed };
}

function nextServerSide(server: UpcaseServer): Promise<ServerSide> {
  const listener = (server as unknown as { bound: { tcp: net.Server } }).bound.tcp;
  return new Promise((resolve) => {
    listener.once('connection', (socket: net.Socket) => {
      const side: ServerSide = {
        lastActivity: performance.now(),
        closed: new Promise((done) => socket.once('close', () => done(performance.now()))),
      };
      const touch = (): void => {
        side.lastActivity = performance.now();
      };
      socket.on('data', touch);
      socket.on('drain', touch);
      resolve(side);
    });
  });
}

/** A client that never reads and keeps trying to write until the server closes it (at most 20 s). */
async function floodUntilClosed(socket: net.Socket): Promise<void> {
  await floodWithoutReading(socket, { quietMs: 20_000, timeoutMs: 20_000 });
}

for (const tcpTransport of TRANSPORTS) {
  describe(`idle timeout (${tcpTransport})`, { concurrency: true }, () => {
    test(`a silent connection is closed after ${IDLE_S} s ±10%, counted from the last byte exchanged`, async () => {
      await withServer({ idleTimeout: IDLE_S, tcpTransport }, async (server, connect) => {
        const socket = await connect(server.address().port);
        const closed = closedAt(socket);
        socket.write('ping');
        const [reply] = (await once(socket, 'data')) as [Buffer];
        const lastByte = performance.now();
        assert.equal(reply.toString(), 'PING');
        const elapsed = ((await closed) - lastByte) / 1000;
        assert.ok(elapsed >= IDLE_S * 0.9 && elapsed <= IDLE_S * 1.1, `closed after ${elapsed.toFixed(3)} s, want ${IDLE_S} s ±10%`);
        assert.equal(server.stats.idleTimeouts, 1);
      });
    });

    test('a connection that never sends anything is closed after the timeout ±10%', async () => {
      await withServer({ idleTimeout: IDLE_S, tcpTransport }, async (server, connect) => {
        const socket = await connect(server.address().port);
        const connected = performance.now();
        const elapsed = ((await closedAt(socket)) - connected) / 1000;
        assert.ok(elapsed >= IDLE_S * 0.9 && elapsed <= IDLE_S * 1.1, `closed after ${elapsed.toFixed(3)} s`);
      });
    });

    test('traffic keeps a connection open past the timeout; silence then closes it', async () => {
      await withServer({ idleTimeout: 1.5, tcpTransport }, async (server, connect) => {
        const socket = await connect(server.address().port);
        let closed = false;
        socket.on('close', () => {
          closed = true;
        });
        let replies = '';
        socket.on('data', (d: Buffer) => {
          replies += d.toString();
        });
        for (let i = 0; i < 8; i++) {
          socket.write('k');
          await delay(250);
        }
        assert.equal(closed, false, 'closed although traffic kept flowing');
        assert.equal(replies, 'KKKKKKKK');
        await until(() => closed, 'the idle close', 5000);
        assert.equal(server.stats.idleTimeouts, 1);
      });
    });

    test('idleTimeout 0 never closes', async () => {
      await withServer({ idleTimeout: 0, tcpTransport }, async (server, connect) => {
        const socket = await connect(server.address().port);
        await delay(1500);
        assert.equal(socket.destroyed, false);
        assert.equal(server.stats.idleTimeouts, 0);
        socket.destroy();
      });
    });
  });

  // One at a time: these flood from the same process, which would delay each other's timers.
  describe(`clients that stop reading (${tcpTransport})`, () => {
    test('replies owed to a client that does not read: reset after the write timeout', async () => {
      const W = 1;
      await withServer({ idleTimeout: 0, writeTimeout: W, tcpTransport }, async (server, connect) => {
        let error: NodeJS.ErrnoException | undefined;
        const connected = connect(server.address().port).then((socket) => {
          socket.on('error', (err) => {
            error = err;
          });
          return socket;
        });
        const side = await stalledServerSide(server, connected);
        const socket = await connected;
        const elapsed = ((await side.closed) - side.lastActivity) / 1000;
        // The stall timer starts at the last read whose reply could not be written.
        assert.ok(
          elapsed >= W * 0.9 && elapsed <= W + 3,
          `reset ${elapsed.toFixed(3)} s after the server's last activity, want ${W} (bounded)`,
        );
        assert.ok(socket.destroyed, 'the client was never cut off');
        assert.equal(server.stats.writeTimeouts, 1);
        assert.equal(server.stats.idleTimeouts, 0);
        // A reset, not a FIN queued behind replies nobody reads.
        assert.ok(error === undefined || ['ECONNRESET', 'EPIPE'].includes(error.code ?? ''), `unexpected ${error?.code}`);
        await until(() => server.connectionCount === 0, 'the server to drop the connection', 5000);
      });
    });

    test(`with the write timeout off, the idle timeout closes a stalled client after ${IDLE_S} s ±10%`, async () => {
      await withServer({ idleTimeout: IDLE_S, writeTimeout: 0, tcpTransport }, async (server, connect) => {
        const connected = connect(server.address().port);
        const side = await stalledServerSide(server, connected);
        const socket = await connected;
        const elapsed = ((await side.closed) - side.lastActivity) / 1000;
        // net.Socket#setTimeout would let the first expiry pass here and close at up to 2×.
        assert.ok(
          elapsed >= IDLE_S * 0.9 && elapsed <= IDLE_S * 1.1,
          `closed ${elapsed.toFixed(3)} s after the server's last activity, want ${IDLE_S} ±10%`,
        );
        assert.ok(socket.destroyed, 'the client was never cut off');
        assert.equal(server.stats.idleTimeouts, 1);
        assert.equal(server.stats.writeTimeouts, 0);
      });
    });

    test('a slow but steady reader is served completely', async () => {
      await withServer({ idleTimeout: 2, writeTimeout: 2, tcpTransport }, async (server, connect) => {
        const socket = await connect(server.address().port);
        const payload = Buffer.alloc(4 << 20, 'q');
        const received: Buffer[] = [];
        let bytes = 0;
        socket.on('data', (d: Buffer) => {
          received.push(d);
          bytes += d.length;
          // Read in bursts with breaks, well inside the timeouts.
          socket.pause();
          setTimeout(() => socket.resume(), 2);
        });
        socket.end(payload);
        await once(socket, 'end');
        assert.equal(bytes, payload.length);
        assert.ok(Buffer.concat(received).equals(Buffer.alloc(4 << 20, 'Q')));
        assert.equal(server.stats.writeTimeouts, 0);
        assert.equal(server.stats.idleTimeouts, 0);
      });
    });
  });
}
