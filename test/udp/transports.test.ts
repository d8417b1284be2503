// The native UDP transport (batched recvmmsg/sendmmsg) and the node:dgram fallback
// must behave identically: the same battery runs against both, and their stats agree.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, describe, test } from 'node:test';
import { startServer, upcase, type ServerOptions, type UpcaseServer } from '../../src/index.js';
import { formatAddress, loadNativeUdp } from '../../src/udp/native.js';

const servers: UpcaseServer[] = [];
after(() => Promise.all(servers.map((s) => s.close())));

async function udpServer(options: ServerOptions): Promise<UpcaseServer> {
  const server = await startServer({ host: '127.0.0.1', port: 0, tcp: false, udpRateLimit: 0, ...options });
  servers.push(server);
  return server;
}

/** Sends each datagram, then collects replies until `expect` arrived or `quietMs` passed with nothing. */
async function exchange(port: number, datagrams: Buffer[], expect: number, quietMs = 300, host = '127.0.0.1'): Promise<Buffer[]> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, host.includes(':') ? '::1' : '127.0.0.1', resolve));
  const replies: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    let timer = setTimeout(resolve, quietMs * 10);
    socket.on('message', (msg) => {
      replies.push(msg);
      clearTimeout(timer);
      timer = setTimeout(resolve, replies.length >= expect ? 20 : quietMs);
    });
  });
  for (const d of datagrams) socket.send(d, port, host);
  await done;
  socket.close();
  return replies;
}

test('the native transport is built on Linux (npm ci compiles it)', () => {
  assert.equal(process.platform, 'linux');
  assert.notEqual(loadNativeUdp(), null, 'build/Release/upcase_udp.node is missing: run `npm run build:native`');
});

test('an unknown udpTransport is rejected', async () => {
  await assert.rejects(startServer({ port: 0, udpTransport: 'bogus' as never }), { code: 'UPCASE_ERR_INVALID_ARG' });
});

for (const transport of ['native', 'dgram'] as const) {
  describe(`UDP over ${transport}`, () => {
    test('reports its transport', async () => {
      const server = await udpServer({ udpTransport: transport });
      assert.equal(server.udpTransport, transport);
    });

    test('answers text, invalid bytes and an empty datagram exactly', async () => {
      const server = await udpServer({ udpTransport: transport });
      const inputs = [Buffer.from('hello, straße ﬃ ΐ'), Buffer.from([0x61, 0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x62]), Buffer.alloc(0)];
      for (const input of inputs) {
        const [reply] = await exchange(server.address().port, [input], 1);
        assert.deepEqual(reply, upcase(input));
      }
    });

    test('a 65,507-byte datagram is read and answered whole', async () => {
      const server = await udpServer({ udpTransport: transport });
      const big = Buffer.alloc(65_507, 'abcdefgh');
      const [reply] = await exchange(server.address().port, [big], 1, 1000);
      assert.equal(reply?.length, 65_507);
      assert.deepEqual(reply, upcase(big));
    });

    test('a reply over the UDP maximum is not sent, and is counted', async () => {
      const server = await udpServer({ udpTransport: transport });
      const grows = Buffer.from('ΐ'.repeat(15_000)); // 30,000 bytes in, 90,000 bytes out
      const replies = await exchange(server.address().port, [grows, Buffer.from('after')], 1);
      assert.deepEqual(replies, [Buffer.from('AFTER')]);
      assert.equal(server.stats.udpDrops.too_large, 1);
      assert.equal(server.stats.errors.UPCASE_ERR_MESSAGE_TOO_LARGE, 1);
    });

    test('a burst of 200 datagrams gets 200 correct replies (batches)', async () => {
      const server = await udpServer({ udpTransport: transport });
      const inputs = Array.from({ length: 200 }, (_, i) => Buffer.from(`message ${i} é`));
      const replies = await exchange(server.address().port, inputs, 200, 500);
      assert.equal(replies.length, 200);
      const expected = new Set(inputs.map((i) => upcase(i).toString('hex')));
      for (const r of replies) assert.ok(expected.has(r.toString('hex')));
    });

    test('the per-source rate limit drops exactly past the burst', async () => {
      const server = await udpServer({ udpTransport: transport, udpRateLimit: 1, udpRateBurst: 10 });
      const replies = await exchange(
        server.address().port,
        Array.from({ length: 30 }, () => Buffer.from('x')),
        10,
      );
      assert.equal(replies.length, 10);
      assert.equal(server.stats.udpDrops.rate_limited, 20);
    });

    test('--drop-rate 1 drops everything, counted as simulated', async () => {
      const server = await udpServer({ udpTransport: transport, dropRate: 1 });
      const replies = await exchange(server.address().port, [Buffer.from('a'), Buffer.from('b')], 0, 200);
      assert.equal(replies.length, 0);
      assert.equal(server.stats.udpDrops.simulated, 2);
    });

    test('dual-stack: IPv6 and IPv4 peers of a server on ::', async () => {
      const server = await startServer({ host: '::', port: 0, tcp: false, udpTransport: transport });
      servers.push(server);
      const [v6] = await exchange(server.address().port, [Buffer.from('six')], 1, 300, '::1');
      const [v4] = await exchange(server.address().port, [Buffer.from('four')], 1);
      assert.deepEqual([v6?.toString(), v4?.toString()], ['SIX', 'FOUR']);
    });
  });
}

test('both transports count the same battery identically', async () => {
  const stats = [];
  for (const transport of ['native', 'dgram'] as const) {
    const server = await udpServer({ udpTransport: transport, udpRateLimit: 1, udpRateBurst: 5 });
    const inputs = [
      Buffer.from('abc'),
      Buffer.alloc(0),
      Buffer.from('ΐ'.repeat(15_000)),
      ...Array.from({ length: 10 }, () => Buffer.from('é')),
    ];
    await exchange(server.address().port, inputs, 4, 300);
    stats.push(server.stats);
  }
  assert.deepEqual(stats[0], stats[1]);
});

test('formatAddress writes addresses as node:dgram reports them', () => {
  const v6 = (hex: string) => Buffer.from(hex.replace(/ /g, ''), 'hex');
  const cases: Array<[Buffer, number, string]> = [
    [Buffer.from([127, 0, 0, 1]), 4, '127.0.0.1'],
    [v6('0000 0000 0000 0000 0000 0000 0000 0001'), 6, '::1'],
    [v6('0000 0000 0000 0000 0000 0000 0000 0000'), 6, '::'],
    [v6('0000 0000 0000 0000 0000 ffff 7f00 0001'), 6, '::ffff:127.0.0.1'],
    [v6('2001 0db8 0000 0000 0001 0000 0000 0001'), 6, '2001:db8::1:0:0:1'],
    [v6('fe80 0000 0000 0000 0202 b3ff fe1e 8329'), 6, 'fe80::202:b3ff:fe1e:8329'],
    [v6('2001 0db8 0000 0001 0001 0001 0001 0001'), 6, '2001:db8:0:1:1:1:1:1'],
    [v6('0000 0000 0000 0000 0000 0000 7f00 0001'), 6, '::127.0.0.1'],
  ];
  for (const [bytes, family, expected] of cases) assert.equal(formatAddress(bytes, 0, family), expected);
});
