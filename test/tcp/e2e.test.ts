import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';
import { TcpPeer, tcpRoundTrip } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { delay, until, waitForDrain, within } from '../helpers/wait.js';

const MiB = 1024 * 1024;

/** `n` bytes of text mixing ASCII, 2/3/4-byte characters and ill-formed bytes. */
function mixedUtf8(n: number): Buffer {
  const pieces = ['hello ', 'straße ', 'ﬃ ', 'ΐ ', 'привет ', '中文 ', '𐐨😀 '].map((s) => Buffer.from(s, 'utf8'));
  pieces.push(Buffer.from('ff', 'hex'), Buffer.from('e282', 'hex'), Buffer.from('eda080', 'hex'), Buffer.from('c080', 'hex'));
  const out: Buffer[] = [];
  let size = 0;
  let seed = 1;
  while (size < n) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const p = pieces[seed % pieces.length]!;
    out.push(p);
    size += p.length;
  }
  return Buffer.concat(out).subarray(0, n);
}

// Both TCP transports run the same battery: the native addon and net.Socket streams.
for (const tcpTransport of ['native', 'stream'] as const) {
  describe(`TCP end to end (${tcpTransport})`, () => {
    test('a 1 MiB ASCII message round-trips exactly', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const input = Buffer.alloc(MiB);
      for (let i = 0; i < input.length; i++) input[i] = 0x20 + (i % 95);
      const out = await tcpRoundTrip(server.address().port, input);
      assert.equal(out.length, input.length);
      assert.ok(out.equals(upcase(input)));
      assert.ok(out.includes('ABCDEFGHIJKLMNOPQRSTUVWXYZ'));
    });

    test('a 1 MiB mixed UTF-8 message (with ill-formed bytes) round-trips exactly', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const input = mixedUtf8(MiB);
      const out = await tcpRoundTrip(server.address().port, input);
      assert.ok(out.equals(upcase(input)), 'reply differs from upcase(input)');
      assert.ok(out.includes(Buffer.from('STRASSE FFI', 'utf8')));
    });

    test('a multi-byte character sent one byte at a time, with pauses', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      await client.write('a');
      assert.equal((await client.waitForBytes(1)).toString(), 'A');
      let expected = 'A';
      for (const [ch, upper] of [
        ['ß', 'SS'],
        ['ﬃ', 'FFI'],
        ['𐐨', '𐐀'],
        ['ΐ', '\u0399\u0308\u0301'],
      ] as const) {
        const bytes = Buffer.from(ch, 'utf8');
        for (let i = 0; i < bytes.length - 1; i++) {
          await client.write(bytes.subarray(i, i + 1));
          await delay(25);
        }
        // The incomplete character is held back, not passed through as raw bytes.
        assert.equal(client.received.toString(), expected, `nothing of ${ch} before its last byte`);
        await client.write(bytes.subarray(bytes.length - 1));
        expected += upper;
        const want = Buffer.byteLength(expected);
        assert.equal((await client.waitForBytes(want)).toString(), expected);
      }
      client.socket.end();
      assert.equal((await client.waitForClose()).toString(), expected);
    });

    test('ill-formed bytes pass through unchanged (every fixture, split in random chunks)', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      // A newline ends any incomplete sequence, so the fixtures can share one connection.
      const input = Buffer.concat(CODEC_CASES.flatMap((c) => [Buffer.from(c.input, 'hex'), Buffer.from('\n')]));
      const expected = Buffer.concat(CODEC_CASES.flatMap((c) => [Buffer.from(c.output, 'hex'), Buffer.from('\n')]));
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      const random = randomBytes(input.length);
      for (let i = 0; i < input.length; ) {
        const n = 1 + (random[i]! % 7);
        await client.write(input.subarray(i, i + n));
        i += n;
      }
      client.socket.end();
      const out = await client.waitForClose();
      assert.equal(out.toString('hex'), expected.toString('hex'));
    });

    test('replies stream before the end of input (no newline, socket stays open)', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      await client.write('hello');
      assert.equal((await client.waitForBytes(5)).toString(), 'HELLO');
      await client.write(', straße');
      assert.equal((await client.waitForBytes(14)).toString(), 'HELLO, STRASSE');
      assert.equal(client.ended, false);
      assert.equal(client.closed, false);
      assert.equal(server.connectionCount, 1);
    });

    test('half-close: after the client FIN, everything owed is sent, then the server closes', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      const input = Buffer.concat([mixedUtf8(4 * MiB), Buffer.from('ab\xe2\x82', 'latin1')]);
      // Write everything and half-close before reading a byte: the replies pile up in the kernel
      // buffers and the server must keep sending after it sees our FIN.
      client.socket.pause();
      client.socket.end(input);
      await delay(50);
      client.socket.resume();
      const out = await client.waitForClose(20_000);
      assert.equal(client.ended, true, 'the server sent FIN');
      assert.ok(out.equals(upcase(input)), 'all replies arrived, including the held bytes at the end');
      assert.equal(out.subarray(-4).toString('latin1'), 'AB\xe2\x82');
    });

    test('half-close: the client can still read after end() while the server answers', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      client.socket.end('last words');
      assert.equal((await client.waitForClose()).toString(), 'LAST WORDS');
      assert.equal(client.ended, true);
      assert.equal(client.error, null);
    });

    test('an empty connection (connect, FIN) gets an empty reply and a FIN', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      assert.equal((await tcpRoundTrip(server.address().port, '')).length, 0);
    });

    test('one idle client does not delay 20 others', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const { port } = server.address();
      const idle = await TcpPeer.connect(port);
      t.after(() => idle.destroy());
      await idle.write(Buffer.from('78c3', 'hex')); // 'x' and half of 'ß', then silence
      assert.equal((await idle.waitForBytes(1)).toString(), 'X');
      const inputs = Array.from({ length: 20 }, (_, i) => mixedUtf8(64 * 1024 + i));
      const outs = await within(20_000, '20 clients', Promise.all(inputs.map((input) => tcpRoundTrip(port, input))));
      outs.forEach((out, i) => {
        assert.ok(out.equals(upcase(inputs[i]!)), `client ${i}`);
      });
      assert.equal(idle.closed, false, 'the idle client is still connected');
      await idle.write(Buffer.from('9f', 'hex'));
      assert.equal((await idle.waitForBytes(3)).toString(), 'XSS');
    });

    test('a reset mid-stream on one connection does not affect another', async (t) => {
      const server = await serverFor(t, { tcpTransport });
      const { port } = server.address();
      const victim = await TcpPeer.connect(port);
      const other = await TcpPeer.connect(port);
      t.after(() => other.destroy());
      await other.write('before ');
      await other.waitForBytes(7);
      // The victim sends a lot without reading (the server has replies queued for it), then resets.
      victim.socket.pause();
      victim.socket.write(mixedUtf8(2 * MiB));
      victim.socket.write(Buffer.from('c3', 'hex'));
      await delay(100);
      victim.socket.resetAndDestroy();
      await until(() => server.connectionCount === 1, 'server sees the reset');
      await other.write('after');
      other.socket.end(' straße');
      assert.equal((await other.waitForClose()).toString(), 'BEFORE AFTER STRASSE');
      // And the server still accepts new connections.
      assert.equal((await tcpRoundTrip(port, 'new')).toString(), 'NEW');
    });

    test('1,000 concurrent connections all get correct replies', async (t) => {
      // All from 127.0.0.1: past the default per-source limit (256), which has tests of its own.
      const server = await serverFor(t, { tcpTransport, maxConnectionsPerSource: 0 });
      const { port } = server.address();
      const clients: TcpPeer[] = [];
      t.after(() => {
        for (const c of clients) c.destroy();
      });
      await within(
        30_000,
        '1,000 connections',
        (async () => {
          // Connect in waves of 100 so the SYN backlog is never the test's bottleneck.
          for (let wave = 0; wave < 10; wave++) {
            clients.push(...(await Promise.all(Array.from({ length: 100 }, () => TcpPeer.connect(port)))));
          }
          // Every connection is open at once; now each sends its own message and reads its reply.
          const messages = clients.map((_, i) => `client ${i}: straße ﬃ ${'x'.repeat(i % 50)}`);
          await Promise.all(clients.map((c, i) => c.write(messages[i]!)));
          await Promise.all(
            clients.map(async (c, i) => {
              const expected = upcase(messages[i]!);
              const got = await c.waitForBytes(expected.length, 30_000);
              assert.ok(got.equals(expected), `client ${i} got ${got.toString()}`);
            }),
          );
        })(),
      );
      assert.equal(server.connectionCount, 1000);
      assert.equal(server.stats.connectionsTotal, 1000);
      for (const c of clients) c.socket.end();
      await within(20_000, 'all closed', Promise.all(clients.map((c) => c.waitForClose(20_000))));
      assert.ok(clients.every((c) => c.ended));
    });
  });

  describe(`TCP limits (${tcpTransport})`, () => {
    test('backpressure: the server stops reading from a client that does not read', async (t) => {
      const server = await serverFor(t, { tcpTransport, writeTimeout: 0 });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      client.socket.pause();
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let written = 0;
      // Write until our own writes stall (the server stopped reading), bounded at 256 MiB / 10 s.
      const deadline = Date.now() + 10_000;
      while (written < 256 * MiB && Date.now() < deadline) {
        written += chunk.length;
        if (!client.socket.write(chunk) && (await waitForDrain(client.socket, 500)) !== 'drain') break;
      }
      // What the server has read is bounded by socket buffers, not by what we tried to send.
      assert.ok(server.stats.tcpBytesIn < 64 * MiB, `server read ${server.stats.tcpBytesIn} bytes`);
      assert.ok(written < 256 * MiB, 'our writes stalled');
      // Once we read again, everything flows.
      client.socket.resume();
      client.socket.end();
      const out = await client.waitForClose(30_000);
      assert.equal(out.length, client.socket.bytesWritten);
      assert.ok(out.every((b) => b === 0x41));
    });

    test('writeTimeout: a client that leaves replies unread is closed and counted', async (t) => {
      const server = await serverFor(t, { tcpTransport, writeTimeout: 0.3 });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      client.socket.pause();
      const chunk = Buffer.alloc(256 * 1024, 'a');
      const deadline = Date.now() + 10_000;
      while (!client.closed && Date.now() < deadline && client.error === null) {
        if (!client.socket.write(chunk)) await waitForDrain(client.socket, 100);
      }
      await until(() => server.stats.writeTimeouts > 0, 'server closes the stalled client', 10_000);
      assert.equal(server.stats.writeTimeouts, 1);
      await until(() => server.connectionCount === 0, 'connection gone');
    });

    test('idleTimeout: a silent connection is closed and counted', async (t) => {
      const server = await serverFor(t, { tcpTransport, idleTimeout: 0.2 });
      const client = await TcpPeer.connect(server.address().port);
      t.after(() => client.destroy());
      await client.waitForClose(10_000);
      assert.equal(client.size, 0);
      assert.equal(server.stats.idleTimeouts, 1);
      await until(() => server.connectionCount === 0, 'the server forgets the connection');
    });

    test('maxConnections: connections past the limit are closed at once and counted', async (t) => {
      const server = await serverFor(t, { tcpTransport, maxConnections: 2 });
      const { port } = server.address();
      const a = await TcpPeer.connect(port);
      const b = await TcpPeer.connect(port);
      t.after(() => {
        a.destroy();
        b.destroy();
      });
      await a.write('a');
      await b.write('b');
      await a.waitForBytes(1);
      await b.waitForBytes(1);
      const c = await TcpPeer.connect(port);
      t.after(() => c.destroy());
      await c.waitForClose(5_000);
      assert.equal(c.size, 0);
      assert.equal(server.stats.connectionsRefused, 1);
      await a.write('still here');
      assert.equal((await a.waitForBytes(11)).toString(), 'ASTILL HERE');
    });
  });
}
