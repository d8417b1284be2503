import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { upcase } from '../../src/codec/upcase.js';
import type { ServerOptions } from '../../src/options.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { hex, INVALID, VALID } from '../fixtures/proxy-headers.js';

const PAYLOAD = Buffer.from('hello, straße — ﬃ\n');
const V1 = Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
const V2_LOCAL = hex('0d0a0d0a000d0a515549540a 20 00 0000');

interface LogLine {
  level: number;
  msg: string;
  remoteAddress?: string;
  remotePort?: number;
  proxyAddress?: string;
  reason?: string;
  suppressed?: number;
}

/** A server with a debug logger whose lines the test can read. */
async function serverWithLogs(options: ServerOptions): Promise<{ server: UpcaseServer; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const server = await startServer({ host: '127.0.0.1', port: 0, udp: false, logger: pino({ level: 'debug' }, sink), ...options });
  return { server, logs };
}

interface Outcome {
  reply: Buffer;
  /** 'end': the server ended its side; 'reset': ECONNRESET or similar. */
  how: 'end' | 'reset';
}

/**
 * Connects, writes the chunks (a pause between them so they tend to arrive as
 * separate reads), optionally half-closes, and collects everything until close.
 */
function exchange(
  port: number,
  chunks: Buffer[],
  opts: { host?: string; localAddress?: string; end?: boolean; gapMs?: number } = {},
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, localAddress: opts.localAddress, noDelay: true });
    const got: Buffer[] = [];
    let how: Outcome['how'] = 'end';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('exchange: no close within 10 s'));
    }, 10_000);
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => {
      how = 'reset';
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(got), how });
    });
    socket.on('connect', async () => {
      for (const [i, c] of chunks.entries()) {
        if (i > 0 && opts.gapMs) await sleep(opts.gapMs);
        if (socket.destroyed) return;
        socket.write(c);
      }
      if (opts.end !== false) socket.end();
    });
  });
}

describe('PROXY protocol on the TCP server', () => {
  let server: UpcaseServer;
  let logs: LogLine[];
  let port: number;

  before(async () => {
    ({ server, logs } = await serverWithLogs({ proxyProtocol: true, trustedProxies: '127.0.0.1/32', proxyHeaderTimeout: 1.5 }));
    port = server.address().port;
  });
  after(() => server.close());

  test('v1 header and payload in one write: only the payload is answered, the header address is logged', async () => {
    const before = server.stats.proxyAccepted;
    const { reply, how } = await exchange(port, [Buffer.concat([V1, PAYLOAD])]);
    assert.equal(how, 'end');
    assert.deepEqual(reply, upcase(PAYLOAD));
    assert.equal(server.stats.proxyAccepted, before + 1);
    const open = logs.filter((l) => l.msg === 'connection open' && l.remotePort === 56324);
    assert.equal(open.length, 1);
    assert.equal(open[0]!.remoteAddress, '192.168.0.1');
    assert.equal(open[0]!.proxyAddress, '127.0.0.1');
    assert.ok(logs.some((l) => l.msg === 'connection closed' && l.remoteAddress === '192.168.0.1' && l.remotePort === 56324));
  });

  test('every valid fixture, split at the middle of its header and sent with the payload', async () => {
    for (const f of VALID) {
      const whole = Buffer.concat([f.bytes, PAYLOAD]);
      const mid = Math.floor(f.bytes.length / 2);
      const { reply } = await exchange(port, [whole.subarray(0, mid), whole.subarray(mid)], { gapMs: 20 });
      assert.deepEqual(reply, upcase(PAYLOAD), f.name);
    }
  });

  test('a v2 header one byte per write, then the payload in several writes', async () => {
    const v2 = VALID.find((f) => f.name.startsWith('v2 PROXY TCP over IPv6'))!.bytes;
    const chunks = [...[...v2].map((b) => Buffer.from([b])), PAYLOAD.subarray(0, 5), PAYLOAD.subarray(5)];
    const { reply } = await exchange(port, chunks, { gapMs: 2 });
    assert.deepEqual(reply, upcase(PAYLOAD));
    assert.ok(logs.some((l) => l.msg === 'connection open' && l.remoteAddress === '2001:db8::1' && l.remotePort === 56324));
  });

  test('LOCAL (a health check) is accepted and logged with the real peer address', async () => {
    const { reply } = await exchange(port, [Buffer.concat([V2_LOCAL, Buffer.from('ping')])]);
    assert.equal(reply.toString(), 'PING');
    const local = logs.filter((l) => l.msg === 'connection open' && l.remoteAddress === '127.0.0.1' && l.proxyAddress === undefined);
    assert.ok(local.length >= 1);
  });

  test('no header: closed without a reply, counted as missing, nothing echoed', async () => {
    const before = server.stats.proxyRejected.missing;
    const { reply } = await exchange(port, [Buffer.from('hello\n')], { end: false });
    assert.equal(reply.length, 0);
    assert.equal(server.stats.proxyRejected.missing, before + 1);
    assert.ok(logs.some((l) => l.msg === 'PROXY header rejected; closing' && l.reason === 'missing'));
  });

  test('every invalid fixture: closed without a reply and counted by its reason', async () => {
    for (const f of INVALID) {
      const before = server.stats.proxyRejected[f.reason];
      // The payload follows in the same write: it must never be served.
      const { reply } = await exchange(port, [Buffer.concat([f.bytes, PAYLOAD])], { end: false });
      assert.equal(reply.length, 0, f.name);
      assert.equal(server.stats.proxyRejected[f.reason], before + 1, f.name);
    }
  });

  test('a truncated header (peer half-closes mid-header) is refused and counted', async () => {
    const before = server.stats.proxyRejected.truncated;
    const { reply } = await exchange(port, [V1.subarray(0, 20)]);
    assert.equal(reply.length, 0);
    assert.equal(server.stats.proxyRejected.truncated, before + 1);
  });

  test('a header that never completes is given up after proxyHeaderTimeout', async () => {
    const before = server.stats.proxyRejected.timeout;
    const { reply } = await exchange(port, [V1.subarray(0, 20)], { end: false });
    assert.equal(reply.length, 0);
    // A silent connection as well.
    await exchange(port, [], { end: false });
    assert.equal(server.stats.proxyRejected.timeout, before + 2);
  });

  test('a peer not in trustedProxies is refused at once, even with a valid header; the warning is rate-limited', async () => {
    const before = server.stats.proxyRejected.untrusted;
    const openBefore = server.stats.connectionsTotal;
    for (let i = 0; i < 3; i++) {
      const { reply } = await exchange(port, [Buffer.concat([V1, PAYLOAD])], { localAddress: '127.0.0.2' });
      assert.equal(reply.length, 0);
    }
    assert.equal(server.stats.proxyRejected.untrusted, before + 3);
    assert.equal(server.stats.connectionsTotal, openBefore);
    const warnings = logs.filter((l) => l.msg === 'connection refused: peer is not a trusted proxy');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.remoteAddress, '127.0.0.2');
  });

  test('after all the bad connections the server still serves', async () => {
    assert.equal(server.state, 'listening');
    const { reply } = await exchange(port, [Buffer.concat([V1, Buffer.from('still here')])]);
    assert.equal(reply.toString(), 'STILL HERE');
  });
});

describe('PROXY protocol: trust and defaults', () => {
  test('IPv4-mapped peers of a dual-stack socket match IPv4 trusted blocks', async (t) => {
    const { server } = await serverWithLogs({ host: '::ffff:127.0.0.1', proxyProtocol: true, trustedProxies: '127.0.0.1/32' });
    t.after(() => server.close());
    const { reply } = await exchange(server.address().port, [Buffer.concat([V1, Buffer.from('mapped')])]);
    assert.equal(reply.toString(), 'MAPPED');
    assert.equal(server.stats.proxyAccepted, 1);
  });

  test('the default trusted proxies are loopback: 127.0.0.2 may connect', async (t) => {
    const { server } = await serverWithLogs({ proxyProtocol: true });
    t.after(() => server.close());
    const { reply } = await exchange(server.address().port, [Buffer.concat([V1, Buffer.from('x')])], { localAddress: '127.0.0.2' });
    assert.equal(reply.toString(), 'X');
  });

  test('without proxyProtocol a PROXY line is ordinary data', async (t) => {
    const { server } = await serverWithLogs({});
    t.after(() => server.close());
    const { reply } = await exchange(server.address().port, [V1]);
    assert.deepEqual(reply, V1);
    assert.equal(server.stats.proxyAccepted, 0);
  });

  test('a large payload right behind the header is served in full, with half-close', async (t) => {
    const { server } = await serverWithLogs({ proxyProtocol: true });
    t.after(() => server.close());
    const big = Buffer.alloc(3 << 20, 'abcdefghij');
    const { reply, how } = await exchange(server.address().port, [Buffer.concat([V1, big.subarray(0, 1000)]), big.subarray(1000)]);
    assert.equal(how, 'end');
    assert.equal(reply.length, big.length);
    assert.ok(reply.equals(Buffer.alloc(3 << 20, 'ABCDEFGHIJ')));
  });
});
