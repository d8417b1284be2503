import assert from 'node:assert/strict';
import type { RemoteInfo, Socket } from 'node:dgram';
import { describe, test } from 'node:test';
import { RateLimitedLog, silentLogger } from '../../src/log.js';
import { createStats } from '../../src/stats.js';
import { createDatagramHandler } from '../../src/udp/handler.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6, maxPayloadFor } from '../../src/udp/limits.js';

/** The handler over a fake socket that records sends (or fails them), to reach guards real sockets cannot. */
function harness(options: { udpAllowLowPorts?: boolean; sendError?: NodeJS.ErrnoException } = {}) {
  const sent: Array<{ data: Buffer; port: number; address: string }> = [];
  const socket = {
    send(data: Buffer, port: number, address: string, cb: (err: Error | null) => void) {
      sent.push({ data: Buffer.from(data), port, address });
      cb(options.sendError ?? null);
    },
  } as unknown as Socket;
  const stats = createStats();
  const logger = silentLogger();
  const handler = createDatagramHandler(socket, {
    stats,
    logger,
    warnings: new RateLimitedLog(logger),
    udpRateLimit: 0,
    udpRateBurst: 1,
    udpAllowLowPorts: options.udpAllowLowPorts ?? false,
    dropRate: 0,
  });
  const from = (port: number, address = '127.0.0.1', family = 'IPv4'): RemoteInfo => ({ address, family: family as 'IPv4', port, size: 0 });
  return { handler, sent, stats, from };
}

describe('UDP guards', () => {
  test('source port 0 gets no reply (it cannot be answered)', () => {
    const h = harness();
    h.handler(Buffer.from('x'), h.from(0));
    assert.equal(h.sent.length, 0);
    assert.equal(h.stats.udpDrops.port_zero, 1);
  });

  test('source ports below 1024 get no reply (loop protection, e.g. echo/chargen)', () => {
    const h = harness();
    h.handler(Buffer.from('x'), h.from(7));
    h.handler(Buffer.from('x'), h.from(1023));
    h.handler(Buffer.from('x'), h.from(1024));
    assert.equal(h.stats.udpDrops.low_port, 2);
    assert.deepEqual(
      h.sent.map((s) => s.port),
      [1024],
    );
  });

  test('udpAllowLowPorts answers them', () => {
    const h = harness({ udpAllowLowPorts: true });
    h.handler(Buffer.from('x'), h.from(53));
    assert.deepEqual(
      h.sent.map((s) => s.data.toString()),
      ['X'],
    );
  });

  test('a failed send is counted, not thrown', () => {
    const err = Object.assign(new Error('no buffer space'), { code: 'ENOBUFS' });
    const h = harness({ sendError: err });
    assert.doesNotThrow(() => h.handler(Buffer.from('x'), h.from(40000)));
    assert.equal(h.stats.udpDrops.send_error, 1);
    assert.equal(h.stats.errors.ENOBUFS, 1);
  });

  test('the reply limit follows the peer: IPv4 (also as ::ffff:) or IPv6', () => {
    assert.equal(maxPayloadFor('127.0.0.1', 'IPv4'), MAX_UDP_PAYLOAD_IPV4);
    assert.equal(maxPayloadFor('::ffff:127.0.0.1', 'IPv6'), MAX_UDP_PAYLOAD_IPV4);
    assert.equal(maxPayloadFor('::1', 'IPv6'), MAX_UDP_PAYLOAD_IPV6);
    const h = harness();
    const big = Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 + 1, 'a');
    h.handler(big, h.from(40000, '::ffff:127.0.0.1', 'IPv6'));
    assert.equal(h.stats.udpDrops.too_large, 1);
    h.handler(Buffer.alloc(MAX_UDP_PAYLOAD_IPV4 + 1, 'a'), h.from(40000, '::1', 'IPv6'));
    assert.equal(h.sent.length, 1);
    assert.equal(h.sent[0]!.data.length, MAX_UDP_PAYLOAD_IPV4 + 1);
  });
});
