/**
 * The UDP guards and rate limit over real sockets (exact versions with an
 * injected clock and fake sources are in test/udp/handler.test.ts).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { MAX_UDP_PAYLOAD_IPV4 } from '../../src/udp/limits.js';
import { udpExchange } from '../helpers/roundtrip.js';
import { delay, until } from '../helpers/wait.js';

async function socketOn(address = '127.0.0.1', port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

/** Sends `count` datagrams back to back from one socket; counts replies that arrive within `waitMs` of the last send. */
async function burst(port: number, count: number, waitMs = 500): Promise<{ answered: number; sendMs: number }> {
  const socket = await socketOn();
  let answered = 0;
  socket.on('message', () => answered++);
  const payload = Buffer.from('burst');
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: count }, () => new Promise<void>((resolve) => socket.send(payload, port, '127.0.0.1', () => resolve()))),
  );
  const sendMs = performance.now() - t0;
  await delay(waitMs);
  socket.close();
  return { answered, sendMs };
}

describe('UDP rate limit (real sockets)', () => {
  let server: UpcaseServer;
  const RATE = 50;
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, tcp: false, udpRateLimit: RATE });
  });
  after(async () => {
    await server.close();
  });

  test(`a burst of ${RATE}+150 from one source: ${RATE} answered (plus what refilled meanwhile), the rest counted`, async () => {
    const before = { ...server.stats.udpDrops };
    const { answered, sendMs } = await burst(server.address().port, RATE + 150);
    const refill = Math.ceil((sendMs * RATE) / 1000) + 1;
    assert.ok(answered >= RATE && answered <= RATE + refill, `${answered} answered, want ${RATE}..${RATE + refill}`);
    assert.equal(server.stats.udpDrops.rate_limited - before.rate_limited, RATE + 150 - answered);
  });

  test('another source is not affected', async () => {
    const reply = await udpExchange(server.address().port, 'other source');
    assert.equal(reply?.toString(), 'OTHER SOURCE');
  });
});

describe('UDP guards (real sockets)', () => {
  let server: UpcaseServer;
  before(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, tcp: false, udpRateLimit: 0 });
  });
  after(async () => {
    await server.close();
  });

  test('udpRateLimit 0: a burst of 2000 from one source, in windows, is answered in full', async () => {
    const socket = await socketOn();
    let answered = 0;
    socket.on('message', () => answered++);
    for (let sent = 0; sent < 2000; sent += 100) {
      for (let i = 0; i < 100; i++) socket.send('x', server.address().port, '127.0.0.1');
      await until(() => answered >= sent + 100, `${sent + 100} replies (have ${answered})`, 5000, 2);
    }
    socket.close();
    assert.equal(server.stats.udpDrops.rate_limited, 0);
  });

  test('an oversized reply is dropped and counted; the server goes on', async () => {
    const port = server.address().port;
    const request = Buffer.from('ΐ'.repeat(30_000)); // 60,000 bytes → 180,000
    assert.equal(await udpExchange(port, request, 500), null);
    assert.equal(server.stats.udpDrops.too_large, 1);
    assert.equal(server.stats.errors.UPCASE_ERR_MESSAGE_TOO_LARGE, 1);
    const largest = Buffer.alloc(MAX_UDP_PAYLOAD_IPV4, 'a');
    assert.ok((await udpExchange(port, largest))?.equals(Buffer.alloc(MAX_UDP_PAYLOAD_IPV4, 'A')));
  });

  test('no reply to a datagram from the server’s own port (another upcase server would loop)', async () => {
    const port = server.address().port;
    // Same port number on another loopback address: what a second upcase server would send from.
    const twin = await socketOn('127.0.0.2', port);
    let replies = 0;
    twin.on('message', () => replies++);
    twin.send('loop?', port, '127.0.0.1');
    await until(() => server.stats.udpDrops.loop === 1, 'the drop to be counted', 5000);
    await delay(200);
    twin.close();
    assert.equal(replies, 0);
  });

  test('no reply to a source port below 1024 (real socket where privileged; otherwise the OS refuses the bind)', async () => {
    const port = server.address().port;
    let low: dgram.Socket | null = null;
    let lowPort = 0;
    for (const candidate of [1019, 1013, 999, 977, 913]) {
      try {
        low = await socketOn('127.0.0.1', candidate);
        lowPort = candidate;
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EACCES') {
          // Not root: such a source cannot come from this host unprivileged; the handler test covers it.
          assert.ok(process.getuid?.() !== 0);
          return;
        }
        if (code !== 'EADDRINUSE') throw err;
      }
    }
    assert.ok(low !== null, 'no free low port');
    let replies = 0;
    low.on('message', () => replies++);
    const before = server.stats.udpDrops.low_port;
    low.send('from a low port', port, '127.0.0.1');
    await until(() => server.stats.udpDrops.low_port === before + 1, `a low_port drop from ${lowPort}`, 5000);
    await delay(200);
    low.close();
    assert.equal(replies, 0);

    // --udp-allow-low-ports turns the guard off.
    const open = await startServer({ host: '127.0.0.1', port: 0, tcp: false, udpAllowLowPorts: true });
    const again = await socketOn('127.0.0.1', lowPort);
    try {
      const reply = new Promise<Buffer>((resolve) => again.once('message', resolve));
      again.send('from a low port', open.address().port, '127.0.0.1');
      assert.equal((await Promise.race([reply, delay(3000, null, { ref: false })]))?.toString(), 'FROM A LOW PORT');
    } finally {
      again.close();
      await open.close();
    }
  });
});
