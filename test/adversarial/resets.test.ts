/**
 * Resets at any point (mid multi-byte character, mid backpressure, mid reply)
 * and bad bytes on one connection never affect another connection.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { floodWithoutReading, probe } from '../helpers/roundtrip.js';
import { delay, until } from '../helpers/wait.js';

let server: UpcaseServer;
let port: number;

before(async () => {
  server = await startServer({ host: '127.0.0.1', port: 0, udp: false });
  port = server.address().port;
});
after(async () => {
  await server.close();
});

async function open(): Promise<{ socket: net.Socket; received: () => Buffer }> {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => {});
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks) };
}

/** A well-behaved conversation running alongside, checked byte for byte. */
async function bystander(): Promise<{ check: () => Promise<void> }> {
  const { socket, received } = await open();
  const parts = ['straße ', Buffer.from('😀').subarray(0, 1), Buffer.from('😀').subarray(1), ' ﬃ ΐ'];
  const sent: Buffer[] = [];
  return {
    async check() {
      for (const p of parts) {
        const b = Buffer.from(p);
        sent.push(b);
        socket.write(b);
        await delay(5);
      }
      socket.end();
      await once(socket, 'end');
      assert.equal(received().toString(), upcase(Buffer.concat(sent)).toString());
      assert.equal(received().toString(), 'STRASSE 😀 FFI \u0399\u0308\u0301');
    },
  };
}

describe('resets at any point', () => {
  for (const [name, bytes] of [
    ['after the first byte of a 4-byte character', Buffer.from([0xf0])],
    ['after 3 of 4 bytes of a character', Buffer.from([0xf0, 0x9f, 0x98])],
    ['after an invalid lead byte', Buffer.from('abc\xff', 'latin1')],
    ['mid 2-byte character after text', Buffer.concat([Buffer.from('grüß '), Buffer.from('ΐ').subarray(0, 1)])],
  ] as const) {
    test(`reset ${name}: that connection goes, the others stay exact`, async () => {
      const other = await bystander();
      const { socket } = await open();
      const openBefore = server.stats.connectionsOpen;
      socket.write(bytes);
      await delay(20); // let the server hold the incomplete tail
      socket.resetAndDestroy();
      await other.check();
      await until(() => server.stats.connectionsOpen < openBefore, 'the reset connection to close', 5000);
    });
  }

  test('reset mid backpressure: the server drops the backed-up connection and frees it', async () => {
    const other = await bystander();
    const { socket } = await open();
    const openBefore = server.connectionCount;
    const flood = await floodWithoutReading(socket, { chunk: Buffer.from('ΐ'.repeat(16 * 1024)), quietMs: 500 });
    assert.ok(flood.stalled, 'the server never pushed back');
    socket.resetAndDestroy();
    await until(() => server.connectionCount < openBefore, 'the server to drop the reset connection', 5000);
    await other.check();
    await probe(port, false);
  });

  test('reset while the reply to a half-closed conversation is still being written', async () => {
    const { socket } = await open();
    socket.pause();
    socket.end(Buffer.alloc(8 << 20, 'z'));
    await delay(100);
    socket.resetAndDestroy();
    await until(() => server.connectionCount === 0, 'the server to drop it', 5000);
    await probe(port, false);
  });
});

describe('isolation', () => {
  test('a connection holding an incomplete character does not affect another; both complete exactly', async () => {
    const a = await open();
    const b = await open();
    a.socket.write(Buffer.from([0x61, 0xf0, 0x9f])); // 'a' + half of 😀
    b.socket.write('straße');
    await until(() => b.received().length >= 7, 'b’s reply', 5000);
    assert.equal(b.received().toString(), 'STRASSE');
    assert.equal(a.received().toString(), 'A'); // the half character is held, not guessed
    a.socket.write(Buffer.from([0x98, 0x80]));
    b.socket.end(Buffer.from([0xff])); // a stray byte on b
    a.socket.end();
    await Promise.all([once(a.socket, 'end'), once(b.socket, 'end')]);
    assert.equal(a.received().toString(), 'A😀');
    assert.ok(b.received().equals(Buffer.concat([Buffer.from('STRASSE'), Buffer.from([0xff])])));
  });

  test('random bytes on many connections at once: each gets exactly its own uppercase', async () => {
    const inputs = Array.from({ length: 50 }, (_, i) => {
      const b = Buffer.alloc(2000 + i * 37);
      for (let j = 0; j < b.length; j++) b[j] = (j * 131 + i * 17 + ((j * j) % 251)) & 0xff;
      return b;
    });
    const outputs = await Promise.all(
      inputs.map(async (input, i) => {
        const { socket, received } = await open();
        for (let off = 0; off < input.length; off += 97 + i) socket.write(input.subarray(off, off + 97 + i));
        socket.end();
        await once(socket, 'end');
        return received();
      }),
    );
    outputs.forEach((out, i) => {
      assert.ok(out.equals(upcase(inputs[i]!)), `connection ${i} got someone else's bytes or wrong ones`);
    });
  });
});
