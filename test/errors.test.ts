/**
 * The error vocabulary: every network failure, whichever API meets it, is one
 * class with one code, worded by one function, and keeps the OS code, where it
 * happened and the OS error. Real sockets on 127.0.0.1; `no-such-host.invalid`
 * never resolves (RFC 6761 §6.4).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runBench } from '../src/bench/run.js';
import { Pinger } from '../src/client/ping.js';
import { tcpRequest } from '../src/client/tcp.js';
import { UdpClient } from '../src/client/udp.js';
import {
  ClosedError,
  ConnectError,
  deserializeError,
  exitStatusOf,
  InvalidArgumentError,
  ListenError,
  NetworkError,
  networkError,
  ResolveError,
  SocketError,
  serializeError,
  TimeoutError,
  TlsError,
  UpcaseError,
  WorkerError,
} from '../src/errors.js';
import { ClusterPrimary } from '../src/server/cluster.js';
import { startServer } from '../src/server/server.js';

const NO_SUCH_HOST = 'no-such-host.invalid';

/** A TCP port that was bound and closed again: nothing listens there. */
async function closedTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A UDP port that was bound and closed again: the kernel answers with port unreachable. */
async function closedUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

async function takenTcpPort(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** The ListenError of a TCP listen on 127.0.0.1:`port` that another socket holds, as `assert.rejects` checks it. */
function tcpPortInUse(port: number): (err: NetworkError) => true {
  return (err) => {
    assert.ok(err instanceof ListenError, `got ${err.name}`);
    assert.equal(err.code, 'UPCASE_ERR_LISTEN');
    assert.equal(err.syscallCode, 'EADDRINUSE');
    assert.deepEqual([err.transport, err.address, err.port], ['tcp', '127.0.0.1', port]);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    assert.equal(err.message, `cannot listen on 127.0.0.1:${port} (tcp): address already in use`);
    return true;
  };
}

describe('every network error is worded by one function, one class per code', { concurrency: true }, () => {
  test('refused (TCP): ConnectError, UPCASE_ERR_CONNECT, ECONNREFUSED, host and port kept, cause is the OS error', async () => {
    const port = await closedTcpPort();
    await assert.rejects(tcpRequest('hi', { host: '127.0.0.1', port }), (err: NetworkError) => {
      assert.ok(err instanceof ConnectError && err instanceof NetworkError && err instanceof UpcaseError);
      assert.equal(err.name, 'ConnectError');
      assert.equal(err.code, 'UPCASE_ERR_CONNECT');
      assert.equal(err.syscallCode, 'ECONNREFUSED');
      assert.deepEqual([err.transport, err.address, err.port], ['tcp', '127.0.0.1', port]);
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      assert.equal(err.message, `cannot connect to 127.0.0.1:${port} (tcp): connection refused (nothing is listening there)`);
      return true;
    });
  });

  test('refused (UDP port unreachable): the same words and code', async () => {
    const port = await closedUdpPort();
    const client = new UdpClient({ host: '127.0.0.1', port, retries: 0 });
    try {
      await assert.rejects(client.request('hi'), {
        name: 'ConnectError',
        code: 'UPCASE_ERR_CONNECT',
        syscallCode: 'ECONNREFUSED',
        message: `cannot connect to 127.0.0.1:${port} (udp): connection refused (nothing is listening there)`,
      });
    } finally {
      await client.close();
    }
  });

  test('not found: ResolveError, UPCASE_ERR_RESOLVE, for the client, the pinger, the load generator and the server', async () => {
    const expected = (transport: string) => ({
      name: 'ResolveError',
      code: 'UPCASE_ERR_RESOLVE',
      syscallCode: 'ENOTFOUND',
      address: NO_SUCH_HOST,
      transport,
      message: `cannot resolve ${NO_SUCH_HOST} (${transport}): host not found`,
    });
    await assert.rejects(tcpRequest('hi', { host: NO_SUCH_HOST, port: 9 }), expected('tcp'));
    const udp = new UdpClient({ host: NO_SUCH_HOST, port: 9 });
    await assert.rejects(udp.request('hi'), expected('udp'));
    await udp.close();
    await assert.rejects(new Pinger({ host: NO_SUCH_HOST, port: 9, count: 1 }).run(), expected('udp'));
    await assert.rejects(runBench({ host: NO_SUCH_HOST, port: 9, duration: 0.1, warmup: 0 }), expected('tcp'));
    await assert.rejects(runBench({ transport: 'udp', host: NO_SUCH_HOST, port: 9, duration: 0.1, warmup: 0 }), expected('udp'));
    await assert.rejects(startServer({ host: NO_SUCH_HOST, port: 0 }), expected('tcp'));
    await assert.rejects(startServer({ host: NO_SUCH_HOST, port: 0, tcp: false }), expected('udp'));
  });

  test('refused (load generator): ConnectError in the same words, not Node’s raw `connect ECONNREFUSED`', async () => {
    const port = await closedTcpPort();
    await assert.rejects(runBench({ host: '127.0.0.1', port, duration: 0.1, warmup: 0 }), {
      name: 'ConnectError',
      code: 'UPCASE_ERR_CONNECT',
      syscallCode: 'ECONNREFUSED',
      port,
      message: `cannot connect to 127.0.0.1:${port} (tcp): connection refused (nothing is listening there)`,
    });
  });

  test('reset: SocketError, UPCASE_ERR_SOCKET, ECONNRESET, with the reply bytes so far', async (t) => {
    const server = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const { port } = server.address() as net.AddressInfo;
    await assert.rejects(tcpRequest('hi', { host: '127.0.0.1', port }), (err: NetworkError) => {
      assert.ok(err instanceof SocketError);
      assert.equal(err.code, 'UPCASE_ERR_SOCKET');
      assert.equal(err.syscallCode, 'ECONNRESET');
      assert.equal(err.port, port);
      assert.equal(err.received, undefined);
      assert.equal(err.message, `connection reset by 127.0.0.1:${port} (tcp) after 0 reply bytes`);
      return true;
    });
  });

  test('timeout: TimeoutError, UPCASE_ERR_TIMEOUT, no OS code', async (t) => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    t.after(() => silent.close());
    const { port } = silent.address();
    const client = new UdpClient({ host: '127.0.0.1', port, retries: 0, timeout: 100 });
    try {
      await assert.rejects(client.request('hi'), (err: NetworkError) => {
        assert.ok(err instanceof TimeoutError);
        assert.equal(err.code, 'UPCASE_ERR_TIMEOUT');
        assert.equal(err.syscallCode, undefined);
        assert.deepEqual([err.transport, err.address, err.port], ['udp', '127.0.0.1', port]);
        assert.equal(err.message, `no reply from 127.0.0.1:${port} (udp) after 1 try`);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  test('address in use: ListenError, UPCASE_ERR_LISTEN, EADDRINUSE, for TCP and for UDP', async (t) => {
    const port = await takenTcpPort(t);
    await assert.rejects(startServer({ host: '127.0.0.1', port, udp: false }), tcpPortInUse(port));
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    t.after(() => udp.close());
    const udpPort = udp.address().port;
    await assert.rejects(startServer({ host: '127.0.0.1', port: udpPort, tcp: false, udpTransport: 'dgram' }), {
      name: 'ListenError',
      code: 'UPCASE_ERR_LISTEN',
      syscallCode: 'EADDRINUSE',
      transport: 'udp',
      message: `cannot listen on 127.0.0.1:${udpPort} (udp): address already in use`,
    });
  });

  test('an OS error without plain words keeps its own message and code', () => {
    const cause = Object.assign(new Error('something odd'), { code: 'EODD' });
    const err = networkError({ op: 'connect' }, { transport: 'tcp', address: 'example.test', port: 7 }, cause);
    assert.equal(err.message, 'cannot connect to example.test:7 (tcp): something odd (EODD)');
    assert.equal(err.syscallCode, 'EODD');
    assert.equal(err.cause, cause);
    // Wrapping twice changes nothing.
    assert.equal(networkError({ op: 'listen' }, { transport: 'udp', address: '::', port: 1 }, err), err);
  });

  test('each network error class has its one code, on the class and on every error, and its own name', () => {
    const where = { transport: 'tcp', address: 'h', port: 1 } as const;
    const classes = [ListenError, ConnectError, ResolveError, SocketError, TimeoutError];
    const codes = ['UPCASE_ERR_LISTEN', 'UPCASE_ERR_CONNECT', 'UPCASE_ERR_RESOLVE', 'UPCASE_ERR_SOCKET', 'UPCASE_ERR_TIMEOUT'];
    assert.deepEqual(
      classes.map((c) => c.code),
      codes,
    );
    for (const NetworkClass of classes) {
      const err = new NetworkClass('m', where, { code: 'EX' });
      assert.ok(err instanceof NetworkError && err instanceof UpcaseError && err instanceof Error);
      assert.deepEqual([err.code, err.name, err.message, err.syscallCode], [NetworkClass.code, NetworkClass.name, 'm', 'EX']);
      assert.equal(deserializeError(serializeError(err)).constructor, NetworkClass);
    }
  });

  test('IPv6 addresses are bracketed', () => {
    const err = networkError({ op: 'listen' }, { transport: 'udp', address: '::', port: 12000 }, { code: 'EADDRINUSE' });
    assert.equal(err.message, 'cannot listen on [::]:12000 (udp): address already in use');
  });
});

describe('a cluster worker’s error reaches the primary whole', () => {
  test('EADDRINUSE in a worker: the primary rejects with the same ListenError (class, code, address, port, OS code)', async (t) => {
    const port = await takenTcpPort(t);
    const primary = new ClusterPrimary({
      workers: 1,
      server: { host: '127.0.0.1', port, drainTimeout: 1 },
      exec: fileURLToPath(new URL('fixtures/cluster-worker.mjs', import.meta.url)),
      execArgv: [],
      processMetrics: false,
    });
    t.after(() => primary.close());
    await assert.rejects(primary.start(), tcpPortInUse(port));
  });

  test('serializeError / deserializeError keep class and fields for every kind', () => {
    const where = { transport: 'udp', address: 'h', port: 5 } as const;
    const cases: UpcaseError[] = [
      new ListenError('l', where, Object.assign(new Error('x'), { code: 'EACCES' })),
      new ResolveError('r', where, { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND h' }),
      new InvalidArgumentError('port', 'a port', 70000),
      new TlsError('t', { stage: 'credentials', tlsCode: 'ENOENT' }),
      new ClosedError('c'),
    ];
    for (const original of cases) {
      const copy = deserializeError(JSON.parse(JSON.stringify(serializeError(original))));
      assert.equal(copy.constructor, original.constructor);
      assert.equal(copy.code, original.code);
      assert.equal(copy.message, original.message);
      assert.equal(exitStatusOf(copy), exitStatusOf(original));
      if (original instanceof NetworkError) {
        const n = copy as NetworkError;
        assert.deepEqual([n.syscallCode, n.transport, n.address, n.port], [original.syscallCode, 'udp', 'h', 5]);
        assert.equal((n.cause as NodeJS.ErrnoException).code, original.syscallCode);
      }
    }
    assert.ok(deserializeError(serializeError(new Error('plain'))) instanceof WorkerError);
  });
});

describe('exitStatusOf', () => {
  const where = { transport: 'tcp', address: 'h', port: 1 } as const;
  test('2 for usage and configuration errors: bad options, a host that does not resolve, unusable TLS files', () => {
    assert.equal(exitStatusOf(new InvalidArgumentError('port', 'a port', -1)), 2);
    assert.equal(exitStatusOf(new ResolveError('r', where)), 2);
    assert.equal(exitStatusOf(new TlsError('cannot read TLS certificate x')), 2);
  });
  test('1 for network errors, timeouts, failed handshakes and anything else', () => {
    for (const err of [
      new ConnectError('c', where),
      new ListenError('l', where),
      new SocketError('s', where),
      new TimeoutError('t', where),
      new TlsError('h', { stage: 'handshake' }),
      new ClosedError('c'),
      new WorkerError('w'),
      new Error('plain'),
      'a string',
    ]) {
      assert.equal(exitStatusOf(err), 1, String(err));
    }
  });
});
