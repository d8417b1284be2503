/**
 * What a user sees when the network fails, for every command: one line on
 * stderr, `upcase: <message>`, in the same words, and exit status 2 for a usage
 * or configuration error (a host that does not resolve) or 1 for a network
 * error or timeout. Real sockets on 127.0.0.1; `no-such-host.invalid` never resolves.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';

const NO_SUCH_HOST = 'no-such-host.invalid';

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const refused = (port: number, transport: string): string =>
  `upcase: cannot connect to 127.0.0.1:${port} (${transport}): connection refused (nothing is listening there)\n`;
const notFound = (transport: string): string => `upcase: cannot resolve ${NO_SUCH_HOST} (${transport}): host not found\n`;

describe('network errors on the command line', () => {
  test('refused: client (tcp, udp) and bench say so in the same words, exit 1', async () => {
    const port = await closedPort();
    const [tcp, udp, bench] = await Promise.all([
      runCli(['client', '--host', '127.0.0.1', '-p', String(port), 'hi']),
      runCli(['client', '--udp', '--host', '127.0.0.1', '-p', String(port), 'hi']),
      runCli(['bench', '--host', '127.0.0.1', '--port', String(port), '--duration', '1']),
    ]);
    assert.deepEqual([tcp.code, tcp.stderr], [1, refused(port, 'tcp')]);
    assert.deepEqual([udp.code, udp.stderr], [1, refused(port, 'udp')]);
    assert.deepEqual([bench.code, bench.stderr], [1, refused(port, 'tcp')]);
  });

  test('refused: ping reports each ping as ping(8) does, exit 1', async () => {
    const port = await closedPort();
    const r = await runCli(['ping', '127.0.0.1', '-p', String(port), '-c', '1']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^From 127\\.0\\.0\\.1:${port}: seq=1 Destination port unreachable$`, 'm'));
    assert.equal(r.stderr, '');
  });

  test('not found: client, ping, bench and serve (one process or workers) say `cannot resolve`, exit 2 (as ping(8))', async () => {
    const [client, clientUdp, ping, bench, benchUdp, serve] = await Promise.all([
      runCli(['client', '--host', NO_SUCH_HOST, 'hi']),
      runCli(['client', '--udp', '--host', NO_SUCH_HOST, 'hi']),
      runCli(['ping', NO_SUCH_HOST, '-c', '1']),
      runCli(['bench', '--host', NO_SUCH_HOST, '--duration', '1']),
      runCli(['bench', '--udp', '--host', NO_SUCH_HOST, '--duration', '1']),
      runCli(['serve', '--host', NO_SUCH_HOST, '--port', '0']),
    ]);
    // With workers, the error comes from a worker, over IPC, and is the same.
    const cluster = await runCli(['serve', '--workers', '2', '--host', NO_SUCH_HOST, '--port', '0', '--log-level', 'silent']);
    assert.deepEqual([client.code, client.stderr], [2, notFound('tcp')]);
    assert.deepEqual([clientUdp.code, clientUdp.stderr], [2, notFound('udp')]);
    assert.deepEqual([ping.code, ping.stderr], [2, notFound('udp')]);
    assert.deepEqual([bench.code, bench.stderr], [2, notFound('tcp')]);
    assert.deepEqual([benchUdp.code, benchUdp.stderr], [2, notFound('udp')]);
    assert.deepEqual([serve.code, serve.stderr, serve.stdout], [2, notFound('tcp'), '']);
    assert.deepEqual([cluster.code, cluster.stderr, cluster.stdout], [2, notFound('tcp'), '']);
  });

  test('reset: the client names the server and the bytes it got, exit 1', async (t) => {
    const server = net.createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const { port } = server.address() as net.AddressInfo;
    const r = await runCli(['client', '--host', '127.0.0.1', '-p', String(port), 'hi']);
    assert.deepEqual([r.code, r.stderr], [1, `upcase: connection reset by 127.0.0.1:${port} (tcp) after 0 reply bytes\n`]);
  });

  test('timeout: the client says how long it waited, exit 1', async (t) => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    t.after(() => silent.close());
    const { port } = silent.address();
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '-p', String(port), '--retries', '0', 'hi']);
    assert.deepEqual([r.code, r.stderr], [1, `upcase: no reply from 127.0.0.1:${port} (udp) after 1 try\n`]);
  });

  test('bench checks its --report path before the run: a missing directory is a usage error, exit 2', async () => {
    const port = await closedPort();
    // Were the path not checked first, this run would fail on the refused connection (exit 1).
    const r = await runCli([
      'bench',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--duration',
      '60',
      '--report',
      '/nonexistent/dir/x.svg',
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr.split('\n')[0],
      'upcase bench: --report: expected a file in a directory that exists and is writable (/nonexistent/dir is not), got /nonexistent/dir/x.svg',
    );
  });

  test('address in use: serve names address, port and transport, exit 1', async (t) => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.after(() => taken.close());
    const { port } = taken.address() as net.AddressInfo;
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port)]);
    assert.deepEqual([r.code, r.stderr, r.stdout], [1, `upcase: cannot listen on 127.0.0.1:${port} (tcp): address already in use\n`, '']);
  });
});
