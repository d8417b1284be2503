/**
 * The TCP connection contract (docs/protocol.md, "A TCP connection"), run through
 * every transport in test/tcp/transports.ts with the same cases: what a client
 * sees from outside (exact bytes, FIN or reset) and what the server counts.
 * A new transport is one entry in TRANSPORTS; it ships only if it passes here.
 *
 * Timeouts are small (0.3 s) and every wait is bounded; no case asserts a speed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { TCP_TRANSPORTS } from '../../src/options.js';
import { floodWithoutReading } from '../helpers/roundtrip.js';
import { delay, until } from '../helpers/wait.js';
import { hex, INVALID, VALID } from '../fixtures/proxy-headers.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { type Served, serve, type Transport, TRANSPORTS } from './transports.js';

const MiB = 1024 * 1024;
/** The small timeout the timer cases use, in seconds. */
const TIMEOUT_S = 0.3;

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki?.remove());

/** What a peer that never reads made each transport take in (bytes read by the server; bytes its kernel accepted). */
const heldForNonReader = new Map<string, { serverRead: number; peerSent: number }>();

interface Case {
  name: string;
  run(t: TestContext, transport: Transport): Promise<void>;
}

/** Polls until `served` has no connection left (the server forgot it). */
const allClosed = (served: Served): Promise<void> =>
  until(() => served.server.connectionCount === 0, 'the server to forget the connection', 10_000);

const CASES: Case[] = [
  {
    name: 'a character cut across writes is answered once complete; counters match the bytes',
    async run(t, transport) {
      const served = await serve(t, transport, pki);
      const client = await served.connect();
      const deseret = Buffer.from('𐐨', 'utf8'); // f0 90 90 a8 → 𐐀 f0 90 90 80
      await client.write(Buffer.concat([Buffer.from('ab'), deseret.subarray(0, 1)]));
      await client.waitForBytes(2);
      await client.write(deseret.subarray(1, 3));
      await delay(150);
      assert.equal(client.received.toString(), 'AB', 'part of a character was answered before it was complete');
      await client.write(Buffer.concat([deseret.subarray(3), Buffer.from('c')]));
      await client.waitForBytes(7);
      client.socket.end();
      const out = await client.waitForEnd();
      assert.deepEqual(out, Buffer.from('AB𐐀C', 'utf8'));
      assert.ok(client.ended, 'the server ended with a FIN');
      await allClosed(served);
      assert.equal(served.bytesIn(), 7);
      assert.equal(served.bytesOut(), 7);
    },
  },
  {
    name: 'invalid UTF-8 passes through unchanged, in any split, and a character cut by the FIN is sent as it came',
    async run(t, transport) {
      const served = await serve(t, transport, pki);
      const client = await served.connect();
      // é, a stray 0xff, x, an overlong NUL, a surrogate, a truncated sequence, z, and half a character at the end.
      const input = hex('c3a9 ff 78 c080 eda080 e282 7a f090');
      const expected = hex('c389 ff 58 c080 eda080 e282 5a f090');
      assert.deepEqual(upcase(input), expected);
      for (const piece of [input.subarray(0, 2), input.subarray(2, 5), input.subarray(5, 9), input.subarray(9)]) {
        await client.write(piece);
        await delay(20);
      }
      client.socket.end();
      const out = await client.waitForEnd();
      assert.deepEqual(out, expected);
      await allClosed(served);
      assert.equal(served.bytesIn(), input.length);
      assert.equal(served.bytesOut(), expected.length);
      assert.deepEqual(served.stats.errors, {});
    },
  },
  {
    name: 'a peer that never reads: the write timeout closes it (a reset on plain TCP), counted; what was taken in is bounded',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { writeTimeout: TIMEOUT_S, idleTimeout: 0 });
      const client = await served.connect();
      // The flood waits on 'drain' or 'close' once per stall: many listeners, none leaked past the socket.
      client.socket.setMaxListeners(0);
      const flood = await floodWithoutReading(client.socket, { maxBytes: 256 * MiB, quietMs: 1000, timeoutMs: 20_000 });
      await until(() => served.stats.writeTimeouts === 1, 'the write timeout', 10_000);
      await client.waitForEnd();
      await allClosed(served);
      const serverRead = served.bytesIn();
      heldForNonReader.set(transport.name, { serverRead, peerSent: flood.sent });
      t.diagnostic(
        `${transport.name}: the server read ${(serverRead / MiB).toFixed(2)} MiB; the peer's kernel took ${(flood.sent / MiB).toFixed(2)} MiB`,
      );
      assert.equal(served.stats.writeTimeouts, 1);
      assert.equal(served.stats.idleTimeouts, 0);
      assert.ok(flood.sent < 256 * MiB, 'the server never pushed back');
      assert.ok(serverRead < 32 * MiB, `the server read ${serverRead} bytes from a peer that does not read`);
      if (!transport.tls) assert.equal(client.error?.code, 'ECONNRESET', 'plain TCP is reset, not closed with a FIN');
    },
  },
  {
    name: 'half-close with replies still owed: every byte is delivered after the FIN, then a FIN',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { writeTimeout: 5 });
      const client = await served.connect();
      client.socket.pause();
      const input = Buffer.alloc(16 * MiB);
      for (let i = 0; i < input.length; i++) input[i] = 0x61 + (i % 26);
      client.socket.end(input);
      // Let the server fill every buffer between us while we do not read: replies are owed.
      let last = -1;
      await until(
        () => {
          const now = served.bytesOut();
          const still = now === last;
          last = now;
          return still && now > 0;
        },
        'the server to back up',
        10_000,
      );
      assert.ok(served.bytesIn() < input.length || client.size === 0, 'nothing was owed');
      client.socket.resume();
      const out = await client.waitForEnd(30_000);
      assert.ok(client.ended, 'no FIN after the replies');
      assert.equal(client.error, null);
      assert.equal(out.length, input.length);
      assert.ok(out.equals(upcase(input)), 'the reply differs from the uppercase of the input');
      await allClosed(served);
      assert.equal(served.stats.writeTimeouts, 0);
      assert.equal(served.bytesOut(), input.length);
    },
  },
  {
    name: 'half-close to a peer that never reads: the replies owed are bounded by the write timeout',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { writeTimeout: TIMEOUT_S, idleTimeout: 0 });
      const client = await served.connect();
      client.socket.pause();
      client.socket.end(Buffer.alloc(16 * MiB, 'a'));
      await until(() => served.stats.writeTimeouts === 1, 'the write timeout', 10_000);
      await allClosed(served);
      assert.equal(served.stats.writeTimeouts, 1);
      assert.ok(!client.ended || client.size < 16 * MiB, 'the server claimed to have delivered everything');
    },
  },
  {
    name: 'a reset mid-reply: the server survives, counts the error, and serves the next client',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { writeTimeout: 0 });
      const client = await served.connect();
      client.socket.pause();
      client.socket.write(Buffer.alloc(8 * MiB, 'r'));
      await until(() => served.bytesOut() > MiB, 'replies under way', 10_000);
      client.tcp.resetAndDestroy();
      await allClosed(served);
      const errors = Object.values(served.stats.errors).reduce((a, b) => a + b, 0);
      assert.ok(errors >= 1, `no error counted: ${JSON.stringify(served.stats.errors)}`);
      assert.deepEqual(
        Object.keys(served.stats.errors).filter((code) => !['ECONNRESET', 'EPIPE'].includes(code)),
        [],
        `unexpected errors: ${JSON.stringify(served.stats.errors)}`,
      );
      const next = await served.connect();
      next.socket.end('next one');
      assert.equal((await next.waitForEnd()).toString(), 'NEXT ONE');
    },
  },
  {
    name: 'the idle timeout closes a silent connection with a FIN, counted; the write timeout does not',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { idleTimeout: TIMEOUT_S, writeTimeout: TIMEOUT_S });
      const client = await served.connect();
      // Silence is timed from the reply's arrival (the server's last traffic came before it),
      // so scheduling delays on a busy machine can only shorten what is measured.
      let quietSince = 0;
      client.socket.once('data', () => {
        quietSince = performance.now();
      });
      await client.write('hi');
      await client.waitForBytes(2);
      await client.waitForEnd(5_000);
      const quiet = performance.now() - quietSince;
      assert.ok(quiet >= TIMEOUT_S * 1000 * 0.5, `closed after ${quiet.toFixed(0)} ms of silence`);
      assert.equal(client.received.toString(), 'HI');
      assert.ok(client.ended, 'closed without a FIN');
      await allClosed(served);
      assert.equal(served.stats.idleTimeouts, 1);
      assert.equal(served.stats.writeTimeouts, 0);
    },
  },
  {
    name: 'the connection limit: one past it is closed at once, unserved, and counted',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { maxConnections: 2 });
      const a = await served.connect();
      const b = await served.connect();
      for (const c of [a, b]) {
        await c.write('x');
        await c.waitForBytes(1);
      }
      // Refused before any TLS handshake: seen from TCP, an immediate close with nothing sent.
      const refused = await served.connect().then(
        (c) => c,
        () => null,
      );
      if (refused !== null) {
        await refused.waitForEnd(5_000);
        assert.equal(refused.size, 0);
      }
      await until(() => served.stats.connectionsRefused === 1, 'the refusal to be counted', 5_000);
      a.socket.end();
      await a.waitForEnd();
      await until(() => served.server.connectionCount === 1, 'a slot to free up', 5_000);
      const c = await served.connect();
      c.socket.end('again');
      assert.equal((await c.waitForEnd()).toString(), 'AGAIN');
      assert.equal(served.stats.connectionsRefused, 1);
    },
  },
  {
    name: 'PROXY v1 and v2 headers are accepted and the client address from them is the one used',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { proxyProtocol: true, trustedProxies: '127.0.0.1/32' });
      const v2 = VALID.find((f) => f.expect.version === 2 && f.expect.family === 'inet' && f.expect.protocol === 'stream')!;
      const v1 = VALID.find((f) => f.expect.version === 1 && f.expect.family === 'inet')!;
      for (const fixture of [v1, v2]) {
        const client = await served.connect({ proxyHeader: fixture.bytes });
        client.socket.end(`via v${fixture.expect.version}`);
        assert.equal((await client.waitForEnd()).toString(), `VIA V${fixture.expect.version}`);
      }
      await allClosed(served);
      assert.equal(served.stats.proxyAccepted, 2);
      const opened = served.logs.lines.filter((l) => l.msg === 'connection open');
      assert.deepEqual(
        opened.map((l) => [l.remoteAddress, l.remotePort, l.proxyAddress]),
        [v1, v2].map((f) => [f.expect.source!.address, f.expect.source!.port, '127.0.0.1']),
      );
      assert.equal(served.bytesIn(), 'via v1'.length * 2);
    },
  },
  {
    name: 'a malformed PROXY header is rejected unanswered, and counted by its reason',
    async run(t, transport) {
      const served = await serve(t, transport, pki, { proxyProtocol: true, trustedProxies: '127.0.0.1/32' });
      const malformed = INVALID.filter((f) => f.reason === 'malformed').slice(0, 3);
      for (const fixture of malformed) {
        // Rejected before any TLS: sent on the TCP connection, as a balancer would.
        const client = await served.connect({ proxyHeader: fixture.bytes }).then(
          (c) => c,
          () => null,
        );
        if (client !== null) {
          await client.waitForEnd(5_000);
          assert.equal(client.size, 0, `${fixture.name}: answered`);
        }
      }
      await until(() => served.stats.proxyRejected.malformed === malformed.length, 'the rejections to be counted', 5_000);
      await allClosed(served);
      assert.equal(served.bytesIn(), 0);
      assert.equal(served.stats.proxyAccepted, 0);
    },
  },
];

test('every TCP transport the server offers is in this suite, plain and beside TLS', () => {
  for (const choice of TCP_TRANSPORTS.filter((c) => c !== 'auto')) {
    for (const tls of [false, true]) {
      assert.ok(
        TRANSPORTS.some((tr) => tr.tcpTransport === choice && tr.tls === tls),
        `tcpTransport '${choice}'${tls ? ' with TLS' : ''} has no entry in test/tcp/transports.ts`,
      );
    }
  }
});

for (const transport of TRANSPORTS) {
  describe(`TCP contract: ${transport.name}`, { skip: transport.skip }, () => {
    for (const c of CASES) test(c.name, (t) => c.run(t, transport));
  });
}

test('a peer that never reads makes every transport take in a bounded, comparable amount', (t) => {
  const runnable = TRANSPORTS.filter((tr) => tr.skip === false);
  assert.deepEqual([...heldForNonReader.keys()].sort(), runnable.map((tr) => tr.name).sort(), 'a transport did not report');
  for (const [name, { serverRead, peerSent }] of heldForNonReader) {
    t.diagnostic(`${name}: server read ${(serverRead / MiB).toFixed(2)} MiB, peer's kernel took ${(peerSent / MiB).toFixed(2)} MiB`);
  }
  // Kernel buffers (autotuned, several MiB on loopback) dominate on every transport; what
  // a transport holds itself is at most 64 KiB plus one reply (docs/protocol.md).
  const reads = [...heldForNonReader.values()].map((h) => h.serverRead);
  assert.ok(Math.max(...reads) - Math.min(...reads) < 16 * MiB, `the transports differ by more than 16 MiB: ${reads.join(', ')}`);
});
