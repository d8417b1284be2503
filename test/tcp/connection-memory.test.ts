import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { createStats } from '../../src/stats.js';
import { handleConnection } from '../../src/tcp/connection.js';
import { countObjects } from '../helpers/heap.js';
import { TcpPeer } from '../helpers/roundtrip.js';
import { delay, within } from '../helpers/wait.js';

/**
 * An in-memory peer: what we push() is what the handler reads; what the handler
 * writes lands in `written`. With `blocked`, writes are not acknowledged until
 * `unblock()`, like a client that stops reading.
 */
class MemoryPeer extends Duplex {
  written: Buffer[] = [];
  blocked = false;
  private pending: Array<() => void> = [];

  constructor() {
    super({ highWaterMark: 1024, allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.written.push(Buffer.from(chunk));
    if (this.blocked) this.pending.push(() => callback());
    else callback();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.emit('peer-end');
    callback();
  }

  unblock(): void {
    this.blocked = false;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p();
  }

  get output(): string {
    return Buffer.concat(this.written).toString('utf8');
  }
}

function serve(peer: MemoryPeer, writeTimeoutMs = 0) {
  const stats = createStats();
  handleConnection(peer, { stats, logger: silentLogger(), writeTimeoutMs });
  return stats;
}

describe('handleConnection over an in-memory Duplex', () => {
  test('each chunk is answered as it arrives; a split character waits for its last byte', async () => {
    const peer = new MemoryPeer();
    const stats = serve(peer);
    peer.push(Buffer.from('hello '));
    await delay(5);
    assert.equal(peer.output, 'HELLO ');
    peer.push(Buffer.from([0xc3]));
    await delay(5);
    assert.equal(peer.output, 'HELLO ');
    peer.push(Buffer.from([0x9f]));
    await delay(5);
    assert.equal(peer.output, 'HELLO SS');
    assert.equal(stats.tcpBytesIn, 8);
    assert.equal(stats.tcpBytesOut, 8);
  });

  test('end of input: held bytes are flushed unchanged, then our side ends', async () => {
    const peer = new MemoryPeer();
    serve(peer);
    const ended = once(peer, 'peer-end');
    peer.push(Buffer.from([0x61, 0xe2, 0x82]));
    peer.push(null);
    await within(2_000, 'end', ended);
    assert.equal(Buffer.concat(peer.written).toString('hex'), '41e282');
  });

  test('backpressure: reading pauses while writes are not acknowledged, and resumes after', async () => {
    const peer = new MemoryPeer();
    serve(peer);
    peer.blocked = true;
    peer.push(Buffer.alloc(4096, 'a'));
    await delay(5);
    assert.equal(peer.isPaused(), true, 'the handler stopped reading');
    peer.push(Buffer.alloc(10, 'b'));
    await delay(5);
    assert.equal(peer.written.length, 1, 'nothing more is answered while paused');
    peer.unblock();
    await delay(5);
    assert.equal(peer.isPaused(), false);
    assert.equal(peer.output, 'A'.repeat(4096) + 'B'.repeat(10));
  });

  test('a write stall past writeTimeoutMs destroys the stream and is counted', async () => {
    const peer = new MemoryPeer();
    const stats = serve(peer, 50);
    peer.blocked = true;
    peer.push(Buffer.alloc(4096, 'a'));
    await within(2_000, 'destroyed', once(peer, 'close'));
    assert.equal(stats.writeTimeouts, 1);
    assert.equal(peer.destroyed, true);
  });

  test('progress in time clears the stall timer', async () => {
    const peer = new MemoryPeer();
    const stats = serve(peer, 500);
    peer.blocked = true;
    peer.push(Buffer.alloc(4096, 'a'));
    await delay(5);
    assert.equal(peer.isPaused(), true);
    peer.unblock();
    await delay(700);
    assert.equal(stats.writeTimeouts, 0);
    assert.equal(peer.destroyed, false);
  });

  test('a stream error is counted by code and the stream destroyed, without throwing', async () => {
    const peer = new MemoryPeer();
    const stats = serve(peer);
    const closed = new Promise((resolve) => peer.on('close', resolve)); // events.once() would reject on the 'error'
    peer.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await within(2_000, 'close', closed);
    assert.equal(stats.errors.ECONNRESET, 1);
  });
});

describe('what an idle connection keeps (docs/benchmarks.md, memory per idle connection)', () => {
  test('after a round trip: no codec state and no timer of its own, with both timeouts on', async (t) => {
    const stats = createStats();
    const server = net.createServer((socket) =>
      handleConnection(socket, { stats, logger: silentLogger(), ownsChunks: true, idleTimeoutMs: 60_000, writeTimeoutMs: 60_000 }),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const clients: TcpPeer[] = [];
    t.after(() => {
      for (const c of clients) c.socket.destroy();
      server.close();
    });
    const count = 100;
    for (let i = 0; i < count; i++) {
      const client = await TcpPeer.connect(port);
      clients.push(client);
      // Half of them cut a character across two reads first (its start is held, then completed).
      if (i % 2 === 1) {
        await client.write(Buffer.from([0xc3]));
        await delay(1);
        await client.write(Buffer.from([0x9f]));
        assert.equal((await client.waitForBytes(2)).toString(), 'SS');
      }
      await client.write('hello');
      assert.equal((await client.waitForBytes(i % 2 === 1 ? 7 : 5)).toString(), i % 2 === 1 ? 'SSHELLO' : 'HELLO');
    }
    const held = await countObjects(['Upcaser', 'Timeout']);
    t.diagnostic(`${count} idle connections: ${JSON.stringify(held)}`);
    // The old handler kept one Upcaser (with its 4-byte Buffer) and one idle Timeout per connection.
    assert.ok(held.Upcaser! < count / 4, `${held.Upcaser} Upcasers held for ${count} idle connections`);
    assert.ok(held.Timeout! < count / 4, `${held.Timeout} Timeouts held for ${count} idle connections`);
  });
});

test("a half-open socket served keeps one 'end' listener, its own, and still answers after the peer's FIN", async (t) => {
  const served: net.Socket[] = [];
  const serve = (socket: net.Socket): void => {
    served.push(socket);
    handleConnection(socket, { stats: createStats(), logger: silentLogger(), ownsChunks: true });
  };
  const halfOpen = net.createServer({ allowHalfOpen: true }, serve);
  const closing = net.createServer({ allowHalfOpen: false }, serve);
  for (const server of [halfOpen, closing]) {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
  }
  const roundTrip = async (server: net.Server): Promise<string> => {
    const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    t.after(() => client.destroy());
    await once(client, 'connect');
    client.end('bye');
    const chunks: Buffer[] = [];
    client.on('data', (d: Buffer) => chunks.push(d));
    await within(5_000, 'the server to end', once(client, 'end'));
    return Buffer.concat(chunks).toString();
  };
  // Node's own 'end' listener (onReadableStreamEnd) acts only on a socket that is not half-open.
  const replyHalfOpen = roundTrip(halfOpen);
  await within(
    5_000,
    'the accept',
    (async () => {
      while (served.length < 1) await delay(5);
    })(),
  );
  assert.deepEqual(
    served[0]!.listeners('end').map((f) => f.name),
    ['onEnd'],
  );
  assert.equal(await replyHalfOpen, 'BYE');
  const replyClosing = roundTrip(closing);
  await within(
    5_000,
    'the accept',
    (async () => {
      while (served.length < 2) await delay(5);
    })(),
  );
  assert.deepEqual(
    served[1]!.listeners('end').map((f) => f.name),
    ['onReadableStreamEnd', 'onEnd'],
  );
  assert.equal(await replyClosing, 'BYE');
});
