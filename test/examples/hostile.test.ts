import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { type Started, startOnFreePort, TEXTBOOK, tsxArgs } from '../helpers/programs.js';
import { run } from '../helpers/cli.js';
import { tcpRoundTrip, udpRoundTrip } from '../helpers/roundtrip.js';
import { delay, within } from '../helpers/wait.js';

// The example servers (examples/) against hostile clients: a reset in the middle
// of a reply, bytes that are not UTF-8, more than the example reads in one go.
// After each, the server must still be there and answer the next client.

const READY = /^The server is ready to receive\n/;
const WAIT_MS = 10_000;

const tcpExchange = (port: number, message: Buffer): Promise<Buffer> => tcpRoundTrip(port, message, { timeoutMs: WAIT_MS });
const udpExchange = (port: number, message: Buffer): Promise<Buffer> => udpRoundTrip(port, message);

/**
 * After a hostile client: the next client is answered, and the server is still
 * running a moment later (a crash from an error event queued behind that reply
 * would show by then).
 */
async function assertStillServes(server: Started, next: () => Promise<Buffer>, expected: string): Promise<void> {
  assert.deepEqual(await next(), Buffer.from(expected));
  await delay(200);
  assert.equal(server.child.exitCode, null, `the example server exited; output: ${server.stdout()}`);
  assert.equal(server.child.signalCode, null);
  assert.deepEqual(await next(), Buffer.from(expected));
}

/** A fresh example server for each test, so that one test's crash cannot hide behind another's. */
function exampleServer(transport: 'tcp' | 'udp'): () => Started {
  let server: Started | undefined;
  beforeEach(async () => {
    server = await startOnFreePort(transport, process.execPath, (port) => tsxArgs(`examples/${transport}-server.ts`, String(port)), READY);
  });
  afterEach(() => server?.stop());
  return () => server!;
}

describe('examples/tcp-server.ts survives hostile clients', () => {
  const server = exampleServer('tcp');
  const next = (): Promise<Buffer> => tcpExchange(server().port, Buffer.from('next client'));

  test('a client that resets in the middle of the reply', async () => {
    // 4 MiB: the server is still reading (and replying) when the client resets. A few
    // times, as the server may have finished with a connection before its reset arrives.
    for (let i = 0; i < 5; i++) {
      const socket = net.connect({ host: '127.0.0.1', port: server().port });
      socket.on('error', () => {});
      socket.write(Buffer.alloc(4 * 1024 * 1024, 'a'));
      await within(WAIT_MS, 'the first bytes of the reply', once(socket, 'data'));
      socket.resetAndDestroy();
    }
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  test("the textbook's TCPClient.py sending 5,000 bytes, reading 1,024 and closing", async () => {
    const r = await run('python3', [`${TEXTBOOK}TCPClient.py`, '127.0.0.1', String(server().port)], { input: `${'a'.repeat(5000)}\n` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /^Input lowercase sentenceFrom server: {2}A+\n$/);
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  test('more than one read: the first read is answered, the rest is read and dropped', async () => {
    // 1 MiB arrives in several reads; the example answers one read, as the textbook's recv(1024) does.
    const reply = await tcpExchange(server().port, Buffer.alloc(1024 * 1024, 'a'));
    assert.ok(reply.length > 0 && reply.length < 1024 * 1024, `reply of ${reply.length} bytes`);
    assert.deepEqual(reply, Buffer.alloc(reply.length, 'A'));
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  test('bytes that are not UTF-8 are answered as U+FFFD', async () => {
    const reply = await tcpExchange(server().port, Buffer.from([0x61, 0xff, 0xfe, 0x62]));
    assert.deepEqual(reply, Buffer.from('A\uFFFD\uFFFDB'));
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });
});

describe('examples/udp-server.ts survives hostile clients', () => {
  const server = exampleServer('udp');
  const next = (): Promise<Buffer> => udpExchange(server().port, Buffer.from('next client'));

  test('clients that close their socket before the reply comes (ICMP port unreachable)', async () => {
    for (let i = 0; i < 5; i++) {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => socket.send(Buffer.alloc(1000, 'x'), server().port, '127.0.0.1', () => resolve()));
      socket.close();
    }
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  test('bytes that are not UTF-8 are answered as U+FFFD', async () => {
    assert.deepEqual(await udpExchange(server().port, Buffer.from([0x61, 0xff, 0x62])), Buffer.from('A\uFFFDB'));
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  test('more than the textbook reads (2048), and a reply too big for one datagram', async () => {
    // 5,000 bytes: the textbook's recvfrom(2048) would cut this; the example reads the whole datagram.
    assert.deepEqual(await udpExchange(server().port, Buffer.alloc(5000, 'a')), Buffer.alloc(5000, 'A'));
    // 60,000 invalid bytes become 180,000 bytes of U+FFFD: too big for a datagram, so no reply.
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.send(Buffer.alloc(60_000, 0xff), server().port, '127.0.0.1', () => resolve()));
    socket.close();
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });

  const root = process.getuid?.() === 0;
  test('a forged datagram from source port 0 (nobody to answer)', { skip: root ? false : 'needs root for a raw socket' }, async () => {
    // A raw socket writes the UDP header itself: source port 0, checksum 0 (none, allowed over IPv4).
    const forge =
      'import socket,struct,sys\n' +
      'port=int(sys.argv[1]); data=b"forged"\n' +
      's=socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)\n' +
      's.sendto(struct.pack("!HHHH",0,port,8+len(data),0)+data, ("127.0.0.1",0))\n';
    const r = await run('python3', ['-c', forge, String(server().port)]);
    assert.equal(r.code, 0, r.stderr);
    await assertStillServes(server(), next, 'NEXT CLIENT');
  });
});
