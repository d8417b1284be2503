import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { connectTcp, tcpRequest, tcpStream } from '../../src/client/tcp.js';
import { upcase } from '../../src/codec/upcase.js';
import { NetworkError, SocketError, TimeoutError } from '../../src/errors.js';
import { pickFixedPort, startProcess } from '../helpers/programs.js';
import { suiteServer } from '../helpers/serve.js';

/** A raw TCP server on 127.0.0.1 that does whatever the test needs with each connection. */
async function rawServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port where nothing listens. */
const deadTcpPort = (): Promise<number> => pickFixedPort('tcp');

describe('tcpRequest', () => {
  const shared = suiteServer({ udp: false });

  test('sends one message per connection and resolves with the whole reply', async () => {
    const message = Buffer.concat([Buffer.from('hello, straße ﬃ '), Buffer.from([0xff, 0xc3]), Buffer.from(' ǆ')]);
    const reply = await tcpRequest(message, { host: '127.0.0.1', port: shared.port });
    assert.deepEqual(reply, upcase(message));
    assert.equal(reply.toString('latin1').startsWith('HELLO, STRASSE FFI '), true);
  });

  test('an empty message gets an empty reply', async () => {
    assert.deepEqual(await tcpRequest('', { host: '127.0.0.1', port: shared.port }), Buffer.alloc(0));
  });

  test('a refused connection is UPCASE_ERR_CONNECT naming host, port and transport', async () => {
    const dead = await deadTcpPort();
    await assert.rejects(tcpRequest('hi', { host: '127.0.0.1', port: dead }), (err: NetworkError) => {
      assert.ok(err instanceof NetworkError);
      assert.equal(err.code, 'UPCASE_ERR_CONNECT');
      assert.equal(err.syscallCode, 'ECONNREFUSED');
      assert.equal(err.transport, 'tcp');
      assert.equal(err.port, dead);
      assert.match(err.message, new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${dead} \\(tcp\\): connection refused`));
      return true;
    });
  });

  test('options are validated: port 0 is not a server port', async () => {
    await assert.rejects(tcpRequest('hi', { port: 0 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`port`.*from 1 to 65535.*`0`/ });
    await assert.rejects(tcpRequest('hi', { port: shared.port, timeout: 0 }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`timeout`/ });
  });
});

describe('tcpRequest against misbehaving servers', () => {
  test('a connect that hangs (full accept queue) times out with UPCASE_ERR_TIMEOUT', async (t) => {
    // A listener with backlog 0 that never accepts: once one connection fills
    // the queue, further SYNs are dropped and connect() hangs.
    const py = await startProcess(
      'python3',
      [
        '-c',
        "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nprint(s.getsockname()[1], flush=True); time.sleep(60)",
      ],
      /^(\d+)\n/,
    );
    t.after(() => py.stop());
    const filler = await connectTcp({ host: '127.0.0.1', port: py.port, timeout: 5 });
    filler.on('error', () => {});
    t.after(() => filler.destroy());
    // The second may still fit depending on the kernel; one of the next few cannot.
    const attempts = [1, 2, 3].map(() => connectTcp({ host: '127.0.0.1', port: py.port, timeout: 0.3 }));
    const results = await Promise.allSettled(attempts);
    for (const r of results) if (r.status === 'fulfilled') r.value.on('error', () => {}).destroy();
    const timedOut = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as NetworkError);
    assert.ok(timedOut.length > 0, 'no connect timed out');
    for (const err of timedOut) {
      assert.equal(err.code, 'UPCASE_ERR_TIMEOUT');
      assert.equal(err.message, `timed out connecting to 127.0.0.1:${py.port} (tcp) after 0.3 s`);
    }
  });

  test('a server that never answers: UPCASE_ERR_TIMEOUT after `timeout` seconds of silence', async (t) => {
    const raw = await rawServer(() => {});
    t.after(() => raw.close());
    await assert.rejects(tcpRequest('hi', { host: '127.0.0.1', port: raw.port, timeout: 0.15 }), (err: NetworkError) => {
      assert.equal(err.code, 'UPCASE_ERR_TIMEOUT');
      assert.equal(err.message, `no reply from 127.0.0.1:${raw.port} (tcp) for 0.15 s`);
      assert.equal(err.received, undefined);
      return true;
    });
  });

  test('part of a reply, then silence: the error carries what arrived', async (t) => {
    const raw = await rawServer((socket) => socket.write('HEL'));
    t.after(() => raw.close());
    await assert.rejects(tcpRequest('hello', { host: '127.0.0.1', port: raw.port, timeout: 0.4 }), (err: NetworkError) => {
      assert.ok(err instanceof TimeoutError);
      assert.equal(err.code, 'UPCASE_ERR_TIMEOUT');
      assert.deepEqual(err.received, Buffer.from('HEL'));
      return true;
    });
  });

  test('part of a reply, then a reset: UPCASE_ERR_SOCKET with what arrived', async (t) => {
    const raw = await rawServer((socket) => {
      socket.once('data', () => socket.write('HEL', () => setTimeout(() => socket.resetAndDestroy(), 20)));
    });
    t.after(() => raw.close());
    await assert.rejects(tcpRequest('hello', { host: '127.0.0.1', port: raw.port }), (err: NetworkError) => {
      assert.ok(err instanceof SocketError);
      assert.equal(err.code, 'UPCASE_ERR_SOCKET');
      assert.equal(err.syscallCode, 'ECONNRESET');
      assert.match(err.message, new RegExp(`^connection reset by 127\\.0\\.0\\.1:${raw.port} \\(tcp\\) after 3 reply bytes`));
      assert.deepEqual(err.received, Buffer.from('HEL'));
      return true;
    });
  });
});

describe('tcpStream', () => {
  const shared = suiteServer({ udp: false });

  test('streams byte for byte, characters split across writes included', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const chunks: Buffer[] = [];
    output.on('data', (c: Buffer) => chunks.push(c));
    const done = tcpStream(input, output, { host: '127.0.0.1', port: shared.port });
    const text = Buffer.from('straße ﬃ\n\xff'.replace('\xff', ''), 'utf8');
    const whole = Buffer.concat([text, Buffer.from([0xff, 0xe2, 0x82]), Buffer.from('ǆ end')]);
    // One byte per write, so every multi-byte character is cut.
    for (const byte of whole) input.write(Buffer.from([byte]));
    input.end();
    const result = await done;
    assert.deepEqual(Buffer.concat(chunks), upcase(whole));
    assert.deepEqual(result, {
      bytesSent: whole.length,
      bytesReceived: upcase(whole).length,
      inputComplete: true,
      check: { verdict: 'match', expected: upcase(whole).length, received: upcase(whole).length },
    });
  });

  test('stops sending and reports inputComplete: false when the server closes first', async (t) => {
    // Like the textbook's server: one read, answer it, close.
    const raw = await rawServer((socket) => socket.once('data', (chunk: Buffer) => socket.end(upcase(chunk.subarray(0, 10)))));
    t.after(() => raw.close());
    let produced = 0;
    const input = Readable.from(
      (function* () {
        // Far more than any socket buffer: the server must be gone before this runs out.
        for (let i = 0; i < 4096; i++) {
          produced++;
          yield Buffer.alloc(64 * 1024, 'a');
        }
      })(),
    );
    const output = new PassThrough();
    const chunks: Buffer[] = [];
    output.on('data', (c: Buffer) => chunks.push(c));
    const result = await tcpStream(input, output, { host: '127.0.0.1', port: raw.port });
    assert.equal(Buffer.concat(chunks).toString(), 'AAAAAAAAAA');
    assert.equal(result.inputComplete, false);
    assert.equal(result.check.verdict, 'truncated');
    assert.equal(result.check.received, 10);
    assert.ok(input.destroyed);
    assert.ok(produced < 4096, `read all ${produced} chunks of input`);
  });

  test('after the end of input, server silence is UPCASE_ERR_TIMEOUT', async (t) => {
    const raw = await rawServer((socket) => socket.resume());
    t.after(() => raw.close());
    await assert.rejects(
      tcpStream(Readable.from([Buffer.from('hi')]), new PassThrough(), { host: '127.0.0.1', port: raw.port, timeout: 0.15 }),
      {
        code: 'UPCASE_ERR_TIMEOUT',
        message: `no reply from 127.0.0.1:${raw.port} (tcp) for 0.15 s`,
      },
    );
  });

  test('a refused connection is UPCASE_ERR_CONNECT', async () => {
    const dead = await deadTcpPort();
    await assert.rejects(tcpStream(Readable.from([]), new PassThrough(), { host: '127.0.0.1', port: dead }), {
      code: 'UPCASE_ERR_CONNECT',
    });
  });
});
