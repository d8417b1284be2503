import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from '../../src/udp/limits.js';
import { startServer } from '../../src/server/server.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';
import { ipv6LoopbackAvailable, tcpRoundTrip, UdpPeer } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

async function udpClient(t: { after: (fn: () => unknown) => void }, type: 'udp4' | 'udp6' = 'udp4'): Promise<UdpPeer> {
  const client = await UdpPeer.open(type);
  t.after(() => client.close());
  return client;
}

describe('UDP end to end', () => {
  test('one reply datagram per request, sent to the sender', async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    const { port } = server.address();
    await client.send('hello, straße', port);
    assert.equal((await client.next()).toString(), 'HELLO, STRASSE');
    await client.send('ﬃ', port);
    await client.send('ΐ', port);
    assert.equal((await client.next()).toString(), 'FFI');
    assert.equal((await client.next()).toString(), '\u0399\u0308\u0301');
    assert.equal(server.stats.udpDatagramsIn, 3);
    assert.equal(server.stats.udpDatagramsOut, 3);
  });

  test('an empty datagram gets an empty reply', async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    await client.send(Buffer.alloc(0), server.address().port);
    assert.equal((await client.next()).length, 0);
  });

  test('ill-formed bytes pass through unchanged (every fixture as its own datagram)', async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    for (const c of CODEC_CASES) {
      await client.send(Buffer.from(c.input, 'hex'), server.address().port);
      assert.equal((await client.next()).toString('hex'), c.output, c.name);
    }
  });

  test(`a ${MAX_UDP_PAYLOAD_IPV4}-byte datagram is read whole and answered whole (no 2048-byte cut)`, async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    const input = Buffer.alloc(MAX_UDP_PAYLOAD_IPV4);
    for (let i = 0; i < input.length; i++) input[i] = 0x61 + (i % 26);
    await client.send(input, server.address().port);
    const reply = await client.next();
    assert.equal(reply.length, MAX_UDP_PAYLOAD_IPV4);
    assert.ok(reply.equals(upcase(input)));
    assert.equal(server.stats.udpBytesIn, MAX_UDP_PAYLOAD_IPV4);
  });

  test('a datagram whose reply would exceed the maximum payload is not answered, and is counted', async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    const { port } = server.address();
    // 15,000 × ΐ is 30,000 bytes; its uppercase (three code points each) is 90,000 bytes.
    const input = Buffer.from('ΐ'.repeat(15_000), 'utf8');
    assert.equal(input.length, 30_000);
    assert.equal(upcase(input).length, 90_000);
    await client.send(input, port);
    // A later datagram is answered, so the big one was handled (and dropped) before it.
    await client.send('next', port);
    assert.equal((await client.next()).toString(), 'NEXT');
    assert.equal(client.pending, 0, 'no reply to the oversized request');
    assert.equal(server.stats.udpDrops.too_large, 1);
    assert.equal(server.stats.errors.UPCASE_ERR_MESSAGE_TOO_LARGE, 1);
    assert.equal(server.stats.udpDatagramsOut, 1);
    // Just under the limit is still answered: 65,507 bytes of reply.
    const fits = Buffer.concat([Buffer.from('ß'.repeat(21_835), 'utf8'), Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 - 2 * 21_835, 'a')]);
    assert.equal(upcase(fits).length, MAX_UDP_PAYLOAD_IPV4);
    await client.send(fits, port);
    assert.equal((await client.next()).length, MAX_UDP_PAYLOAD_IPV4);
  });

  test('TCP and UDP share one port number', async (t) => {
    const server = await serverFor(t);
    const client = await udpClient(t);
    const { port, transports } = server.address();
    assert.deepEqual(transports, ['tcp', 'udp']);
    await client.send('udp', port);
    assert.equal((await client.next()).toString(), 'UDP');
    assert.equal((await tcpRoundTrip(port, 'tcp')).toString(), 'TCP');
  });

  test('rate limit: past the burst, datagrams from one source are dropped and counted', async (t) => {
    // One token per 1,000 s: no refill can happen while the test runs, however slow the machine.
    const server = await serverFor(t, { udpRateLimit: 0.001, udpRateBurst: 3 });
    const client = await udpClient(t);
    const { port } = server.address();
    for (let i = 0; i < 10; i++) await client.send(`m${i}`, port);
    for (let i = 0; i < 3; i++) assert.equal((await client.next()).toString(), `M${i}`);
    await until(() => server.stats.udpDatagramsIn === 10, 'all 10 seen');
    assert.equal(server.stats.udpDrops.rate_limited, 7);
    assert.equal(client.pending, 0);
  });

  test('a rate below 1 per second still answers (the default burst is at least one datagram)', async (t) => {
    const server = await serverFor(t, { udpRateLimit: 0.5 });
    const client = await udpClient(t);
    await client.send('slow', server.address().port);
    assert.equal((await client.next()).toString(), 'SLOW');
  });

  test('dropRate 1 drops every request (simulated loss), counted', async (t) => {
    const server = await serverFor(t, { dropRate: 1 });
    const client = await udpClient(t);
    await client.send('lost', server.address().port);
    await until(() => server.stats.udpDatagramsIn === 1, 'datagram seen');
    assert.equal(server.stats.udpDrops.simulated, 1);
    assert.equal(client.pending, 0);
  });

  test('a burst of 200 datagrams is answered one for one', async (t) => {
    // Past the default per-source rate limit (100/s, burst 100): that guard has its own tests.
    const server = await serverFor(t, { udpRateLimit: 0 });
    const client = await udpClient(t);
    const { port } = server.address();
    const sent = new Set<string>();
    for (let i = 0; i < 200; i++) {
      sent.add(`MSG ${i}`);
      await client.send(`msg ${i}`, port);
    }
    const got = new Set<string>();
    for (let i = 0; i < 200; i++) got.add((await client.next()).toString());
    assert.deepEqual(got, sent);
  });
});

describe('IPv6 loopback', () => {
  test('::1 serves TCP and UDP (or, without IPv6, fails with UPCASE_ERR_LISTEN)', async (t) => {
    if (!(await ipv6LoopbackAvailable())) {
      await assert.rejects(startServer({ host: '::1', port: 0 }), { code: 'UPCASE_ERR_LISTEN' });
      t.diagnostic('no IPv6 loopback on this host');
      return;
    }
    const server = await startServer({ host: '::1', port: 0 });
    t.after(() => server.close());
    const { host, port } = server.address();
    assert.equal(host, '::1');
    assert.equal((await tcpRoundTrip(port, 'über', { host: '::1' })).toString(), 'ÜBER');
    const client = await udpClient(t, 'udp6');
    await client.send('über', port, '::1');
    assert.equal((await client.next()).toString(), 'ÜBER');
    // The IPv6 maximum payload is larger than IPv4's.
    const big = Buffer.alloc(MAX_UDP_PAYLOAD_IPV6, 'z');
    await client.send(big, port, '::1');
    const reply = await client.next();
    assert.equal(reply.length, MAX_UDP_PAYLOAD_IPV6);
    assert.ok(reply.every((b) => b === 0x5a));
  });
});
