// One abusive address (issue 16): a slowloris from one address — many connections, each sending one byte
// now and then so that the idle timeout never fires — must not take every connection slot. The per-source
// limit (--max-connections-per-source, default 256) keeps it to its share, and a client from another address
// is served at once. Behind a balancer, the limit applies to the client address from the PROXY header.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SERVER_DEFAULTS } from '../../src/options.js';
import { SourceLimit } from '../../src/server/source-limit.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { delay, until, within } from '../helpers/wait.js';

/** A connection from `localAddress` that trickles one byte every `everyMs`, as a slowloris does. */
async function trickler(port: number, localAddress: string, everyMs: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const timer = setInterval(() => socket.write('a'), everyMs);
  timer.unref();
  socket.once('close', () => clearInterval(timer));
  return socket;
}

describe('per-source TCP limit', () => {
  it('a slowloris of 1,500 connections from one address leaves clients from another address served at once', async (t) => {
    const server = await serverFor(t, { idleTimeout: 2 });
    const { port } = server.address();
    const sockets: net.Socket[] = [];
    t.after(() => {
      for (const s of sockets) s.destroy();
    });
    for (let i = 0; i < 1500; i++) sockets.push(await trickler(port, '127.0.0.1', 1000));
    const limit = SERVER_DEFAULTS.maxConnectionsPerSource;
    await until(() => server.stats.connectionsRefusedPerSource === 1500 - limit, 'the connections past the limit refused', 10_000);
    assert.equal(server.connectionCount, limit);
    // Past the idle timeout, the trickling connections are still open (each byte is traffic) …
    await delay(2500);
    assert.equal(server.connectionCount, limit);
    // … and yet another address is served at once.
    const started = Date.now();
    const reply = await within(1500, 'a client from 127.0.0.2', tcpRoundTrip(port, 'still served', { localAddress: '127.0.0.2' }));
    assert.equal(reply.toString(), 'STILL SERVED');
    assert.ok(Date.now() - started < 1500);
    assert.equal(server.stats.connectionsRefused, 0, 'the global limit was never reached');
  });

  it('counts the client address from the PROXY header, not the balancer', async (t) => {
    const server = await serverFor(t, { proxyProtocol: true, maxConnectionsPerSource: 2 });
    const { port } = server.address();
    const open: net.Socket[] = [];
    t.after(() => {
      for (const s of open) s.destroy();
    });
    const viaBalancer = async (client: string): Promise<net.Socket> => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(`PROXY TCP4 ${client} 192.0.2.1 40000 12000\r\n`);
      open.push(socket);
      return socket;
    };
    await viaBalancer('203.0.113.7');
    await viaBalancer('203.0.113.7');
    const third = await viaBalancer('203.0.113.7');
    await within(5000, 'the third connection from 203.0.113.7 closed', once(third, 'close'));
    assert.equal(server.stats.connectionsRefusedPerSource, 1);
    // Another client through the same balancer is served.
    const other = await viaBalancer('198.51.100.9');
    other.end('other client');
    const chunks: Buffer[] = [];
    other.on('data', (d: Buffer) => chunks.push(d));
    await within(5000, 'the other client served', once(other, 'end'));
    assert.equal(Buffer.concat(chunks).toString(), 'OTHER CLIENT');
  });

  it('a closed connection gives its slot back; 0 turns the limit off', async (t) => {
    const limited = await serverFor(t, { maxConnectionsPerSource: 1 });
    const a = await trickler(limited.address().port, '127.0.0.1', 60_000);
    t.after(() => a.destroy());
    const refused = net.connect({ host: '127.0.0.1', port: limited.address().port });
    refused.on('error', () => {});
    await within(5000, 'the second connection refused', once(refused, 'close'));
    assert.equal(limited.stats.connectionsRefusedPerSource, 1);
    a.destroy();
    await until(() => limited.connectionCount === 0, 'the first connection closed');
    assert.equal((await tcpRoundTrip(limited.address().port, 'next')).toString(), 'NEXT');

    const unlimited = await serverFor(t, { maxConnectionsPerSource: 0 });
    const many = await Promise.all(Array.from({ length: 300 }, () => trickler(unlimited.address().port, '127.0.0.1', 60_000)));
    t.after(() => {
      for (const s of many) s.destroy();
    });
    await until(() => unlimited.connectionCount === 300, '300 connections from one address');
    assert.equal(unlimited.stats.connectionsRefusedPerSource, 0);
  });

  it('keys IPv6 sources by /64, and IPv4 by address', () => {
    const limit = new SourceLimit(2);
    assert.notEqual(limit.acquire('2001:db8:1:2::1'), null);
    assert.notEqual(limit.acquire('2001:db8:1:2:ffff::9'), null);
    assert.equal(limit.acquire('2001:db8:1:2:abcd::1'), null, 'a third address of the same /64');
    assert.notEqual(limit.acquire('2001:db8:1:3::1'), null, 'another /64');
    const key = limit.acquire('192.0.2.1')!;
    assert.notEqual(limit.acquire('192.0.2.1'), null);
    assert.equal(limit.acquire('192.0.2.1'), null);
    assert.notEqual(limit.acquire('192.0.2.2'), null);
    limit.release(key);
    assert.notEqual(limit.acquire('192.0.2.1'), null, 'released');
  });
});
