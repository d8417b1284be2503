import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, test } from 'node:test';
import { InvalidArgumentError, NetworkError, UpcaseError } from '../../src/errors.js';
import { startServer, UpcaseServer } from '../../src/server/server.js';
import type { ServerOptions } from '../../src/options.js';
import { TcpPeer, tcpRoundTrip, UdpPeer } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { within } from '../helpers/wait.js';

/** A plain TCP listener on a free 127.0.0.1 port, to make that port busy. */
async function occupyTcp(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as net.AddressInfo).port;
}

async function occupyUdp(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const blocker = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => blocker.bind(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return blocker.address().port;
}

describe('library API: lifecycle', () => {
  test('port 0 picks a free port; address() reports it for both transports', async (t) => {
    const server = await serverFor(t);
    const address = server.address();
    assert.equal(address.host, '127.0.0.1');
    assert.ok(address.port > 0 && address.port < 65536);
    assert.deepEqual(address.transports, ['tcp', 'udp']);
    assert.equal(server.state, 'listening');
    assert.equal((await tcpRoundTrip(address.port, 'ok')).toString(), 'OK');
  });

  test('new UpcaseServer() + listen() resolves to the address and emits listening', async (t) => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0, udp: false });
    t.after(() => server.close());
    assert.equal(server.state, 'new');
    const events: unknown[] = [];
    server.on('listening', (a) => events.push(a));
    const address = await server.listen();
    assert.deepEqual(address.transports, ['tcp']);
    assert.deepEqual(events, [address]);
    assert.deepEqual(server.address(), address);
  });

  test('udp only', async (t) => {
    const server = await serverFor(t, { tcp: false });
    const { port, transports } = server.address();
    assert.deepEqual(transports, ['udp']);
    assert.ok(port > 0);
    const client = await UdpPeer.open();
    t.after(() => client.close());
    await client.send('solo', port);
    assert.equal((await client.next()).toString(), 'SOLO');
  });

  test('address() before listen() throws UPCASE_ERR_CLOSED', () => {
    const server = new UpcaseServer({ port: 0 });
    assert.throws(() => server.address(), { code: 'UPCASE_ERR_CLOSED' });
  });

  test('listen() twice rejects', async (t) => {
    const server = await serverFor(t);
    await assert.rejects(server.listen(), { code: 'UPCASE_ERR_CLOSED' });
  });

  test('close() is idempotent: the same promise every time, and it resolves', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0 });
    const closes: string[] = [];
    server.on('close', () => closes.push('close'));
    const first = server.close();
    const second = server.close();
    assert.equal(first, second);
    assert.equal(server.close({ drain: true }), first);
    await within(5_000, 'close', first);
    assert.equal(server.state, 'closed');
    assert.equal(server.close(), first);
    assert.deepEqual(closes, ['close']);
  });

  test('close() frees the port for TCP and UDP', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0 });
    const { port } = server.address();
    await server.close();
    const again = await startServer({ host: '127.0.0.1', port });
    assert.equal(again.address().port, port);
    await again.close();
  });

  test('close() on a server that never listened resolves', async () => {
    const server = new UpcaseServer({ port: 0 });
    await within(5_000, 'close', server.close());
    assert.equal(server.state, 'closed');
    await assert.rejects(server.listen(), { code: 'UPCASE_ERR_CLOSED' });
  });

  test('close() ends open TCP connections; close({ drain: true }) lets them finish', async (t) => {
    const server = await startServer({ host: '127.0.0.1', port: 0, drainTimeout: 5 });
    t.after(() => server.close());
    const client = await TcpPeer.connect(server.address().port);
    t.after(() => client.destroy());
    await client.write('a');
    await client.waitForBytes(1);
    const closing = server.close({ drain: true });
    assert.equal(server.state, 'draining');
    // Still served while draining, until the client finishes.
    await client.write('b');
    assert.equal((await client.waitForBytes(2)).toString(), 'AB');
    client.socket.end();
    await within(5_000, 'drained close', closing);
    assert.equal(server.state, 'closed');

    const hard = await startServer({ host: '127.0.0.1', port: 0 });
    const c2 = await TcpPeer.connect(hard.address().port);
    t.after(() => c2.destroy());
    await within(5_000, 'hard close', hard.close());
    await c2.waitForClose(5_000);
  });
});

describe('library API: listen errors', () => {
  test('TCP port in use rejects with UPCASE_ERR_LISTEN, EADDRINUSE, transport tcp', async (t) => {
    const port = await occupyTcp(t);
    const err = await startServer({ host: '127.0.0.1', port }).then(
      () => assert.fail('listen should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NetworkError);
    assert.ok(err instanceof UpcaseError);
    assert.equal(err.code, 'UPCASE_ERR_LISTEN');
    assert.equal(err.syscallCode, 'EADDRINUSE');
    assert.equal(err.transport, 'tcp');
    assert.equal(err.port, port);
    assert.equal(err.address, '127.0.0.1');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} \\(tcp\\): address already in use`));
  });

  test('UDP port in use rejects naming udp, and the TCP listener it opened is closed again', async (t) => {
    // The UDP port's number must be free for TCP, or TCP fails first. On a busy host an
    // ephemeral UDP port often has a TCP twin in use, so reserve the TCP port first, block
    // UDP on the same number, then hand the TCP port over.
    let port = 0;
    for (let attempt = 0; attempt < 20 && port === 0; attempt++) {
      const tcp = net.createServer();
      await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
      const candidate = (tcp.address() as net.AddressInfo).port;
      const udp = dgram.createSocket('udp4');
      const bound = await new Promise<boolean>((resolve) => {
        udp.once('error', () => resolve(false));
        udp.bind(candidate, '127.0.0.1', () => resolve(true));
      });
      if (bound) {
        t.after(() => new Promise<void>((resolve) => udp.close(() => resolve())));
        port = candidate;
      } else {
        udp.close();
      }
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
    assert.ok(port > 0, 'found a port number to block');
    await assert.rejects(startServer({ host: '127.0.0.1', port }), {
      code: 'UPCASE_ERR_LISTEN',
      syscallCode: 'EADDRINUSE',
      transport: 'udp',
      port,
    });
    // The TCP side of the failed server must not linger on the port.
    const probe = net.createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  test('UDP only, port in use', async (t) => {
    const port = await occupyUdp(t);
    await assert.rejects(startServer({ host: '127.0.0.1', port, tcp: false }), {
      code: 'UPCASE_ERR_LISTEN',
      syscallCode: 'EADDRINUSE',
      transport: 'udp',
    });
  });

  test('an address this host does not have rejects with EADDRNOTAVAIL', async () => {
    await assert.rejects(startServer({ host: '192.0.2.1', port: 0 }), {
      code: 'UPCASE_ERR_LISTEN',
      syscallCode: 'EADDRNOTAVAIL',
    });
  });

  test('a host name that does not resolve rejects with UPCASE_ERR_RESOLVE', async () => {
    await assert.rejects(startServer({ host: 'no-such-host.invalid', port: 0 }), {
      name: 'ResolveError',
      code: 'UPCASE_ERR_RESOLVE',
      syscallCode: 'ENOTFOUND',
      address: 'no-such-host.invalid',
      message: 'cannot resolve no-such-host.invalid (tcp): host not found',
    });
  });

  test('close() while listen() is in progress: listen rejects, close resolves, nothing stays bound', async () => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0 });
    const listening = server.listen();
    const closing = server.close();
    await assert.rejects(listening, { code: 'UPCASE_ERR_CLOSED' });
    await within(5_000, 'close', closing);
    assert.equal(server.state, 'closed');
    assert.equal(server.connectionCount, 0);
  });

  test('a second listen() while the first is in progress rejects', async (t) => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    const first = server.listen();
    await assert.rejects(server.listen(), { code: 'UPCASE_ERR_CLOSED' });
    assert.ok((await first).port > 0);
  });

  test('after a failed listen() the server can listen again', async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const server = new UpcaseServer({ host: '127.0.0.1', port, udp: false });
    t.after(() => server.close());
    await assert.rejects(server.listen(), { code: 'UPCASE_ERR_LISTEN' });
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    assert.equal((await server.listen()).port, port);
    assert.equal((await tcpRoundTrip(port, 'retry')).toString(), 'RETRY');
  });

  test('a failed server can be closed', async (t) => {
    const port = await occupyTcp(t);
    const server = new UpcaseServer({ host: '127.0.0.1', port });
    await assert.rejects(server.listen(), { code: 'UPCASE_ERR_LISTEN' });
    await within(5_000, 'close', server.close());
  });
});

describe('library API: invalid options', () => {
  const cases: Array<[ServerOptions, string, string]> = [
    [{ port: -1 }, 'port', '-1'],
    [{ port: 70000 }, 'port', '70000'],
    [{ port: 1.5 }, 'port', '1.5'],
    [{ port: '80' as unknown as number }, 'port', '80'],
    [{ host: '' }, 'host', ''],
    [{ host: 'a b' }, 'host', 'a b'],
    [{ tcp: 'yes' as unknown as boolean }, 'tcp', 'yes'],
    [{ maxConnections: 0 }, 'maxConnections', '0'],
    [{ idleTimeout: -1 }, 'idleTimeout', '-1'],
    [{ writeTimeout: Number.NaN }, 'writeTimeout', 'NaN'],
    [{ udpRateLimit: -5 }, 'udpRateLimit', '-5'],
    [{ udpRateBurst: 0 }, 'udpRateBurst', '0'],
    [{ dropRate: 2 }, 'dropRate', '2'],
    [{ drainTimeout: Infinity }, 'drainTimeout', 'Infinity'],
    [{ tcp: false, udp: false }, 'tcp/udp', 'neither'],
  ];
  for (const [options, name, shown] of cases) {
    test(`${JSON.stringify(options) ?? String(options)} → names \`${name}\``, () => {
      const thrown = (() => {
        try {
          new UpcaseServer(options);
        } catch (err) {
          return err;
        }
        return assert.fail('expected a throw');
      })();
      assert.ok(thrown instanceof InvalidArgumentError);
      assert.equal(thrown.code, 'UPCASE_ERR_INVALID_ARG');
      assert.equal(thrown.option, name);
      assert.ok(thrown.message.includes(`\`${name}\``), thrown.message);
      assert.ok(thrown.message.includes(`got \`${shown}\``), thrown.message);
    });
  }

  test('startServer() rejects (not throws) with invalid options', async () => {
    await assert.rejects(startServer({ port: -1 }), { code: 'UPCASE_ERR_INVALID_ARG' });
  });
});
