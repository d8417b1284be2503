/**
 * The UDP guards at the handler level, with a fake socket: source port 0 and
 * ports below 1024 cannot come from an ordinary unprivileged socket, and an
 * injected clock makes the rate limit exact.
 */
import assert from 'node:assert/strict';
import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { RateLimitedLog } from '../../src/log.js';
import { createStats, type ServerStats } from '../../src/stats.js';
import { createDatagramHandler, type DatagramOptions } from '../../src/udp/handler.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from '../../src/udp/limits.js';
import { captureLogger } from '../helpers/logs.js';

interface Sent {
  data: Buffer;
  port: number;
  address: string;
}

function setup(overrides: Partial<DatagramOptions> = {}, sendError?: NodeJS.ErrnoException) {
  const sent: Sent[] = [];
  const socket = {
    send(data: Buffer, port: number, address: string, cb: (err: Error | null) => void) {
      sent.push({ data: Buffer.from(data), port, address });
      cb(sendError ?? null);
    },
  } as unknown as DgramSocket;
  const stats: ServerStats = createStats();
  const captured = captureLogger();
  let now = 1_000;
  const handler = createDatagramHandler(socket, {
    stats,
    logger: captured.logger,
    warnings: new RateLimitedLog(captured.logger),
    udpRateLimit: 0,
    udpRateBurst: 1,
    udpAllowLowPorts: false,
    dropRate: 0,
    localPort: 12000,
    clock: () => now,
    ...overrides,
  });
  const from = (port: number, address = '127.0.0.1', family: 'IPv4' | 'IPv6' = 'IPv4'): RemoteInfo => ({ address, family, port, size: 0 });
  return {
    sent,
    stats,
    captured,
    from,
    send: (data: string | Buffer, rinfo: RemoteInfo) => handler(Buffer.from(data), rinfo),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('UDP guards', () => {
  test('no reply to source port 0, even with low ports allowed', () => {
    for (const udpAllowLowPorts of [false, true]) {
      const h = setup({ udpAllowLowPorts });
      h.send('hi', h.from(0));
      assert.equal(h.sent.length, 0);
      assert.equal(h.stats.udpDrops.port_zero, 1);
      assert.equal(h.stats.udpDatagramsIn, 1);
      assert.equal(h.stats.udpDatagramsOut, 0);
    }
  });

  test('no reply to source ports below 1024 by default (echo, chargen, DNS, NTP, 1023)', () => {
    const h = setup();
    for (const port of [1, 7, 19, 53, 123, 1023]) h.send('loop?', h.from(port));
    assert.equal(h.sent.length, 0);
    assert.equal(h.stats.udpDrops.low_port, 6);
    h.send('ok', h.from(1024));
    assert.deepEqual(h.sent, [{ data: Buffer.from('OK'), port: 1024, address: '127.0.0.1' }]);
  });

  test('udpAllowLowPorts turns the low-port guard off', () => {
    const h = setup({ udpAllowLowPorts: true });
    h.send('echo', h.from(7));
    h.send('x', h.from(1023));
    assert.deepEqual(
      h.sent.map((s) => [s.data.toString(), s.port]),
      [
        ['ECHO', 7],
        ['X', 1023],
      ],
    );
    assert.equal(h.stats.udpDrops.low_port, 0);
  });

  test('no reply to the server’s own port (another upcase server: a reply loop)', () => {
    const h = setup({ localPort: 40000 });
    h.send('ping', h.from(40000, '192.0.2.9'));
    assert.equal(h.sent.length, 0);
    assert.equal(h.stats.udpDrops.loop, 1);
    h.send('ping', h.from(40001, '192.0.2.9'));
    assert.equal(h.sent.length, 1);
  });

  test('dropped requests are logged rate-limited, without payload', () => {
    const h = setup();
    for (let i = 0; i < 500; i++) h.send('secret-payload-zq9', h.from(53));
    const warns = h.captured.lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 1);
    assert.equal(warns[0]!.reason, 'low_port');
    assert.doesNotMatch(h.captured.text(), /zq9/i);
  });
});

describe('UDP rate limit', () => {
  test('a burst of B+K from one source at one instant: exactly B answered, K counted', () => {
    const h = setup({ udpRateLimit: 100, udpRateBurst: 100 });
    for (let i = 0; i < 100 + 25; i++) h.send(`m${i}`, h.from(5000));
    assert.equal(h.sent.length, 100);
    assert.equal(h.stats.udpDrops.rate_limited, 25);
    assert.deepEqual(
      h.sent.slice(0, 3).map((s) => s.data.toString()),
      ['M0', 'M1', 'M2'],
    );
  });

  test('tokens come back at the configured rate', () => {
    const h = setup({ udpRateLimit: 100, udpRateBurst: 100 });
    for (let i = 0; i < 200; i++) h.send('x', h.from(5000));
    assert.equal(h.sent.length, 100);
    h.advance(50); // 5 tokens at 100/s
    for (let i = 0; i < 20; i++) h.send('x', h.from(5000));
    assert.equal(h.sent.length, 105);
  });

  test('the limit is per source address: other sources still get answers', () => {
    const h = setup({ udpRateLimit: 10, udpRateBurst: 10 });
    for (let i = 0; i < 50; i++) h.send('x', h.from(5000, '192.0.2.1'));
    for (let i = 0; i < 5; i++) h.send('y', h.from(5001, '192.0.2.2'));
    assert.equal(h.sent.filter((s) => s.address === '192.0.2.1').length, 10);
    assert.equal(h.sent.filter((s) => s.address === '192.0.2.2').length, 5);
  });

  test('one IPv6 /64 is one source, so fresh addresses do not buy more', () => {
    const h = setup({ udpRateLimit: 10, udpRateBurst: 10 });
    for (let i = 0; i < 50; i++) h.send('x', h.from(5000, `2001:db8:1:2::${i.toString(16)}`, 'IPv6'));
    assert.equal(h.sent.length, 10);
    h.send('x', h.from(5000, '2001:db8:1:3::1', 'IPv6'));
    assert.equal(h.sent.length, 11);
  });

  test('udpRateLimit 0 disables the limit', () => {
    const h = setup({ udpRateLimit: 0 });
    for (let i = 0; i < 10_000; i++) h.send('x', h.from(5000));
    assert.equal(h.sent.length, 10_000);
    assert.equal(h.stats.udpDrops.rate_limited, 0);
  });
});

describe('UDP replies that cannot be sent', () => {
  test('a reply over the IPv4 maximum is dropped and counted; nothing is thrown', () => {
    const h = setup();
    // 'ΐ' is 2 bytes and uppercases to 6 (U+0399 U+0308 U+0301).
    const fits = Buffer.concat([Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 - 6, 'a'), Buffer.from('ΐ')]);
    const over = Buffer.concat([Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 - 5, 'a'), Buffer.from('ΐ')]);
    assert.equal(upcase(fits).length, MAX_UDP_PAYLOAD_IPV4);
    h.send(fits, h.from(5000));
    assert.doesNotThrow(() => h.send(over, h.from(5000)));
    assert.doesNotThrow(() => h.send(Buffer.from('ΐ'.repeat(30_000)), h.from(5000, '::ffff:127.0.0.1', 'IPv6')));
    assert.equal(h.sent.length, 1);
    assert.equal(h.sent[0]!.data.length, MAX_UDP_PAYLOAD_IPV4);
    assert.equal(h.stats.udpDrops.too_large, 2);
    assert.equal(h.stats.errors.UPCASE_ERR_MESSAGE_TOO_LARGE, 2);
  });

  test('IPv6 peers get up to the IPv6 maximum', () => {
    const h = setup();
    const fits = Buffer.concat([Buffer.alloc(MAX_UDP_PAYLOAD_IPV6 - 6, 'a'), Buffer.from('ΐ')]);
    const over = Buffer.concat([Buffer.alloc(MAX_UDP_PAYLOAD_IPV6 - 5, 'a'), Buffer.from('ΐ')]);
    h.send(fits, h.from(5000, '::1', 'IPv6'));
    h.send(over, h.from(5000, '::1', 'IPv6'));
    assert.equal(h.sent.length, 1);
    assert.equal(h.stats.udpDrops.too_large, 1);
  });

  test('a send error is counted by code; nothing is thrown', () => {
    const err = Object.assign(new Error('send EPERM'), { code: 'EPERM' });
    const h = setup({}, err);
    assert.doesNotThrow(() => h.send('x', h.from(5000)));
    assert.equal(h.stats.udpDrops.send_error, 1);
    assert.equal(h.stats.errors.EPERM, 1);
  });

  test('an empty datagram gets an empty reply', () => {
    const h = setup();
    h.send(Buffer.alloc(0), h.from(5000));
    assert.equal(h.sent.length, 1);
    assert.equal(h.sent[0]!.data.length, 0);
  });
});
