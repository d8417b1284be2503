import assert from 'node:assert/strict';
import dnsPromises from 'node:dns/promises';
import { syncBuiltinESMExports } from 'node:module';
import { PassThrough, Readable } from 'node:stream';
import { describe, mock, test } from 'node:test';
import { sendLines, UdpClient } from '../../src/client/udp.js';
import { upcase } from '../../src/codec/upcase.js';
import { MessageTooLargeError, NetworkError } from '../../src/errors.js';
import { startServer } from '../../src/server/server.js';
import { deadUdpPort, fakeUdpServer } from '../helpers/programs.js';
import { suiteServer } from '../helpers/serve.js';

function collect(stream: PassThrough): () => Buffer {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks);
}

describe('UdpClient against the upcase server', () => {
  const shared = suiteServer({ tcp: false });

  test('one datagram, one reply; concurrent requests each get their own', async (t) => {
    const client = new UdpClient({ host: '127.0.0.1', port: shared.port });
    t.after(() => client.close());
    const messages = ['alpha', 'straße', '', 'ﬃ and ǆ', Buffer.from([0x61, 0xff, 0x62])];
    const replies = await Promise.all(messages.map((m) => client.request(m)));
    assert.deepEqual(
      replies,
      messages.map((m) => upcase(m)),
    );
    assert.deepEqual(client.stats, { requests: 5, tries: 5, late: 0 });
  });

  test('the largest IPv4 datagram goes through; one byte more is UPCASE_ERR_MESSAGE_TOO_LARGE', async (t) => {
    const client = new UdpClient({ host: '127.0.0.1', port: shared.port });
    t.after(() => client.close());
    const max = Buffer.alloc(65_507, 'a');
    assert.deepEqual(await client.request(max), Buffer.alloc(65_507, 'A'));
    await assert.rejects(client.request(Buffer.alloc(65_508, 'a')), (err: MessageTooLargeError) => {
      assert.ok(err instanceof MessageTooLargeError);
      assert.equal(err.code, 'UPCASE_ERR_MESSAGE_TOO_LARGE');
      assert.equal(err.limit, 65_507);
      assert.equal(err.size, 65_508);
      return true;
    });
  });
});

describe('UdpClient addresses', () => {
  test('IPv6: [::1] in messages, and the IPv6 limit of 65,527 bytes', async (t) => {
    const server = await startServer({ host: '::1', port: 0, tcp: false });
    t.after(() => server.close());
    const { port } = server.address();
    const client = new UdpClient({ host: '::1', port });
    t.after(() => client.close());
    assert.equal((await client.request(Buffer.alloc(65_527, 'a'))).length, 65_527);
    await assert.rejects(client.request(Buffer.alloc(65_528, 'a')), { code: 'UPCASE_ERR_MESSAGE_TOO_LARGE', limit: 65_527 });
    const dead = await deadUdpPort();
    const nobody = new UdpClient({ host: '::1', port: dead });
    t.after(() => nobody.close());
    await assert.rejects(nobody.request('x'), { message: new RegExp(`^cannot connect to \\[::1\\]:${dead} \\(udp\\)`) });
  });

  test('a host with several addresses: one that is unreachable is skipped for the next', async (t) => {
    // The server listens on IPv4 only, as the textbook's does; the name resolves to ::1 first.
    const server = await startServer({ host: '127.0.0.1', port: 0, tcp: false });
    t.after(() => server.close());
    const lookup = mock.method(dnsPromises, 'lookup', async () => [
      { address: '::1', family: 6 },
      { address: '127.0.0.1', family: 4 },
    ]);
    syncBuiltinESMExports();
    t.after(() => {
      lookup.mock.restore();
      syncBuiltinESMExports();
    });
    const client = new UdpClient({ host: 'dual.example', port: server.address().port });
    t.after(() => client.close());
    assert.equal((await client.request('hello')).toString(), 'HELLO');
    assert.deepEqual(await client.target(), { address: '127.0.0.1', family: 4, maxPayload: 65_507 });
    assert.equal((await client.request('again')).toString(), 'AGAIN');
    assert.equal(lookup.mock.callCount(), 1);
  });
});

describe('UdpClient reliability', () => {
  test('a late reply to an earlier message is never taken as the reply to a later one', async (t) => {
    let heldBack: { port: number; address: string } | null = null;
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      const text = msg.toString();
      if (text === 'first' && heldBack === null) {
        heldBack = rinfo; // lost, as far as the client can tell: it will retry
      } else if (text === 'first') {
        socket.send('FIRST', rinfo.port, rinfo.address);
      } else {
        // The reply to the first try of "first" arrives now, during the wait for "second".
        socket.send('FIRST', heldBack!.port, heldBack!.address);
        setTimeout(() => socket.send(text.toUpperCase(), rinfo.port, rinfo.address), 30);
      }
    });
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port, timeout: 0.1, retries: 3 });
    t.after(() => client.close());
    assert.equal((await client.request('first')).toString(), 'FIRST');
    assert.equal((await client.request('second')).toString(), 'SECOND');
    // The late reply was received, and dropped. (On a slow machine more tries, and more late replies, can happen.)
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(client.stats.late >= 1, `late: ${client.stats.late}`);
    assert.ok(client.stats.tries >= 3, `tries: ${client.stats.tries}`);
  });

  test('retries until a reply comes', async (t) => {
    let seen = 0;
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      if (++seen >= 3) socket.send(upcase(msg), rinfo.port, rinfo.address);
    });
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port, timeout: 0.05, retries: 10 });
    t.after(() => client.close());
    assert.equal((await client.request('third time')).toString(), 'THIRD TIME');
    assert.ok(client.stats.tries >= 3, `tries: ${client.stats.tries}`);
    // Every try came from the same source port.
    assert.equal(new Set(fake.received.map((r) => r.rinfo.port)).size, 1);
  });

  test('no reply: UPCASE_ERR_TIMEOUT after retries + 1 tries, naming host, port and transport', async (t) => {
    const fake = await fakeUdpServer();
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port, timeout: 0.06 });
    t.after(() => client.close());
    await assert.rejects(client.request('anyone?'), (err: NetworkError) => {
      assert.ok(err instanceof NetworkError);
      assert.equal(err.code, 'UPCASE_ERR_TIMEOUT');
      assert.equal(err.message, `no reply from 127.0.0.1:${fake.port} (udp) after 3 tries`);
      assert.equal(err.transport, 'udp');
      assert.equal(err.port, fake.port);
      return true;
    });
    assert.equal(fake.received.length, 3);
  });

  test('nothing listening: UPCASE_ERR_CONNECT at once (port unreachable), not a timeout', async (t) => {
    const port = await deadUdpPort();
    const client = new UdpClient({ host: '127.0.0.1', port, timeout: 5, retries: 5 });
    t.after(() => client.close());
    const started = Date.now();
    await assert.rejects(client.request('hello?'), { code: 'UPCASE_ERR_CONNECT', syscallCode: 'ECONNREFUSED', transport: 'udp' });
    assert.ok(Date.now() - started < 4000, 'waited for the timeout instead');
  });

  test('a message whose uppercase outgrows one datagram is refused before sending', async (t) => {
    const fake = await fakeUdpServer();
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port });
    t.after(() => client.close());
    // ΐ (2 bytes) uppercases to Ϊ́ (6 bytes): 40,000 bytes in, 120,000 out.
    await assert.rejects(client.request('ΐ'.repeat(20_000)), {
      code: 'UPCASE_ERR_MESSAGE_TOO_LARGE',
      message: /^UDP reply \(the uppercase of a 40000-byte message\) of 120000 bytes exceeds the limit of 65507 bytes/,
    });
    assert.equal(fake.received.length, 0);
  });

  test('options are validated', () => {
    assert.throws(() => new UdpClient({ retries: -1 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`retries`/ });
    assert.throws(() => new UdpClient({ port: 70000 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`port`/ });
    assert.throws(() => new UdpClient({ host: '' }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`host`/ });
  });
});

describe('sendLines', () => {
  test('replies are written in input order even when they arrive out of order', async (t) => {
    // Answers later lines sooner: line 1 last.
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      const delay = msg.toString() === 'line 1' ? 80 : 5;
      setTimeout(() => socket.send(upcase(msg), rinfo.port, rinfo.address), delay);
    });
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port, timeout: 1 });
    t.after(() => client.close());
    const output = new PassThrough();
    const written = collect(output);
    // Split mid-line across chunks; a blank line; a last line without a newline.
    const input = Readable.from([Buffer.from('line 1\nli'), Buffer.from('ne 2\n\nstraße\r\nlast')]);
    const result = await sendLines(input, output, client, { window: 4 });
    assert.equal(written().toString(), 'LINE 1\nLINE 2\n\nSTRASSE\r\nLAST');
    assert.equal(result.lines, 5);
  });

  test('a line too long for one datagram fails naming the line, after the earlier replies', async (t) => {
    const fake = await fakeUdpServer((msg, rinfo, socket) => socket.send(upcase(msg), rinfo.port, rinfo.address));
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port });
    t.after(() => client.close());
    const output = new PassThrough();
    const written = collect(output);
    const input = Readable.from([Buffer.from('one\ntwo\n'), Buffer.alloc(70_000, 'x'), Buffer.from('\nfour\n')]);
    await assert.rejects(sendLines(input, output, client), {
      code: 'UPCASE_ERR_MESSAGE_TOO_LARGE',
      message: 'line 3 does not fit in one UDP datagram: it is longer than 65507 bytes',
    });
    assert.equal(written().toString(), 'ONE\nTWO\n');
    assert.equal(fake.received.length, 2);
  });

  test('a line that gets no reply stops the run after the replies before it', async (t) => {
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      if (msg.toString() !== 'silence') socket.send(upcase(msg), rinfo.port, rinfo.address);
    });
    t.after(() => fake.close());
    const client = new UdpClient({ host: '127.0.0.1', port: fake.port, timeout: 0.3, retries: 1 });
    t.after(() => client.close());
    const output = new PassThrough();
    const written = collect(output);
    await assert.rejects(sendLines(Readable.from([Buffer.from('a\nb\nsilence\nd\ne\n')]), output, client), {
      code: 'UPCASE_ERR_TIMEOUT',
      message: `no reply from 127.0.0.1:${fake.port} (udp) after 2 tries`,
    });
    assert.equal(written().toString(), 'A\nB\n');
  });
});
