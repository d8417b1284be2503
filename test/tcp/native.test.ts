// The native TCP transport (native/tcp_serve.c, native/codec.c) against the
// TypeScript one: the C codec must agree with src/codec on every input, and a
// server must behave and count the same on either transport. The end-to-end and
// timeout batteries (test/tcp/e2e.test.ts, test/adversarial/timeouts.test.ts) run
// on both transports too.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { nativeCodecPaths, nativeUpcaser } from '../../src/codec/native.js';
import { Upcaser } from '../../src/codec/upcase.js';
import { startServer, type ServerOptions, type UpcaseServer } from '../../src/index.js';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadNativeTcp, tcpTransportName } from '../../src/tcp/native.js';
import { CODEC_CASES } from '../fixtures/codec-cases.js';
import { bytes, mostlyWellFormed, splitAt } from '../helpers/arbitraries.js';
import { codecPathsUnknown, expectedCodecPaths } from '../helpers/cpu.js';
import { captureLogger } from '../helpers/logs.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { until } from '../helpers/wait.js';

/** The TypeScript codec alone: the reference the C codec is held to. */
function upcase(input: Buffer): Buffer {
  const codec = new Upcaser({ native: false });
  return Buffer.concat([codec.push(input), codec.end()]);
}

function native(path?: string): NonNullable<ReturnType<typeof nativeUpcaser>> {
  const codec = nativeUpcaser(path);
  assert.ok(codec !== null, 'build/Release/upcase_codec.node is missing: run `npm run build:native`');
  return codec;
}

/** The native codec's output for `chunks` pushed in turn, then ended. */
function nativeStreamed(chunks: readonly Buffer[], path?: string): Buffer {
  const codec = native(path);
  return Buffer.concat([...chunks.map((c) => codec.push(c)), codec.end()]);
}

test('the native TCP transport is built on Linux (npm ci compiles it) and is the default', {
  skip: process.platform !== 'linux' && 'the native TCP transport is Linux-only',
}, () => {
  assert.notEqual(loadNativeTcp(), null, 'build/Release/upcase_tcp.node is missing: run `npm run build:native`');
  assert.equal(tcpTransportName(), 'native');
});

test('the C codec picks the widest block path the CPU has, and can be held to any of them', { skip: codecPathsUnknown() }, () => {
  const expected = expectedCodecPaths();
  assert.deepEqual(nativeCodecPaths(), [expected.at(-1), ...expected]);
  assert.throws(() => nativeUpcaser('avx9000'), RangeError);
});

test('the addon checks the case tables before it takes them, and refuses what its codec cannot use', () => {
  // In a process of its own: the first tables accepted are kept for the process.
  const addon = fileURLToPath(new URL('../../build/Release/upcase_codec.node', import.meta.url));
  const script = `
    const b = require(${JSON.stringify(addon)});
    const identity = () => Int32Array.from({ length: 0x20000 }, (_, cp) => cp);
    const none = [new Int32Array([0]), new Uint8Array(0)];
    const attempts = {
      longer: [Object.assign(identity(), { 0x61: 0x100 }), ...none],          // 'a' → a 2-byte character
      surrogate: [Object.assign(identity(), { 0x4e00: 0xd800 }), ...none],    // to a surrogate
      beyond: [Object.assign(identity(), { 0xdf: -2 }), new Int32Array([0, 2]), new Uint8Array(2)], // special 1 of 1
      growth: [Object.assign(identity(), { 0x41: -1 }), new Int32Array([0, 4]), new Uint8Array(4)],  // 1 byte → 4
      shared: [Object.assign(identity(), { 0x41: -1, 0x100: -1 }), new Int32Array([0, 2]), new Uint8Array(2)], // 1 and 2 bytes
      good: [identity(), ...none],
    };
    const out = {};
    for (const [name, args] of Object.entries(attempts)) {
      try { b.setTables(...args); out[name] = 'taken'; } catch (e) { out[name] = e.constructor.name + ': ' + e.message; }
    }
    const codec = b.codecCreate();
    out.after = b.codecPush(codec, Buffer.from('abcé')).toString(); // ASCII is the codec's own; é is the table's
    console.log(JSON.stringify(out));
  `;
  const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as Record<string, string>;
  const refused = 'RangeError: upcase native: case tables the codec cannot use (or out of memory)';
  assert.deepEqual(result, {
    longer: refused,
    surrogate: refused,
    beyond: refused,
    growth: refused,
    shared: refused,
    good: 'taken',
    after: 'ABCé',
  });
});

describe('the C codec agrees with the TypeScript codec', () => {
  test('every code point, alone (too short for any block path)', () => {
    const codec = native();
    const mismatches: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const input = Buffer.from(String.fromCodePoint(cp), 'utf8');
      const out = Buffer.concat([codec.push(input), codec.end()]);
      if (!out.equals(upcase(input)) && mismatches.length < 10) mismatches.push(cp.toString(16));
    }
    assert.deepEqual(mismatches, []);
  });

  test('planes 2 and up have no case mappings (the C codec relies on it)', () => {
    const mapped: string[] = [];
    for (let cp = 0x20000; cp <= 0x10ffff; cp++) {
      const c = String.fromCodePoint(cp);
      if (c.toUpperCase() !== c && mapped.length < 10) mapped.push(cp.toString(16));
    }
    assert.deepEqual(mapped, []);
  });

  // Each block path on its own (servers use the first): every one must follow the rule exactly.
  for (const path of nativeCodecPaths().slice(1)) {
    describe(`on the ${path} path`, () => {
      test('every code point, in one long stream, cut at varying points', () => {
        const parts: Buffer[] = [];
        for (let cp = 0; cp <= 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) parts.push(Buffer.from(String.fromCodePoint(cp), 'utf8'));
        const input = Buffer.concat(parts);
        const cuts: number[] = [];
        for (let at = 0, k = 0; at < input.length; k++) cuts.push((at += 65_536 - (k % 67)));
        assert.ok(nativeStreamed(splitAt(input, cuts), path).equals(upcase(input)));
      });

      test('property: long, mostly well-formed text, random cut points', () => {
        fc.assert(
          fc.property(mostlyWellFormed(40, 600), fc.array(fc.nat(), { maxLength: 6 }), (input, cuts) => {
            assert.deepEqual(nativeStreamed(splitAt(input, cuts), path), upcase(input));
          }),
          { numRuns: 1500 },
        );
      });

      test('every fixture, whole and one byte at a time', () => {
        for (const { name, input, output } of CODEC_CASES) {
          const bytesIn = Buffer.from(input, 'hex');
          assert.equal(nativeStreamed([bytesIn], path).toString('hex'), output, name);
          assert.equal(
            nativeStreamed(
              [...bytesIn].map((b) => Buffer.of(b)),
              path,
            ).toString('hex'),
            output,
            `${name}, byte by byte`,
          );
        }
      });

      test('property: random bytes, random cut points', () => {
        fc.assert(
          fc.property(bytes(200), fc.array(fc.nat(), { maxLength: 12 }), (input, cuts) => {
            assert.deepEqual(nativeStreamed(splitAt(input, cuts), path), upcase(input));
          }),
          { numRuns: 3000 },
        );
      });

      test('long chunks: ASCII words, every kind of character, ill-formed bytes, cut anywhere', () => {
        const pieces = ['hello world ', 'straße ', 'ﬃ ', 'ΐ ', 'ŉ ', 'ı ', 'ȿ ', 'привет ', '中文 ', '𐐨😀 ', 'ǆ '].map((s) =>
          Buffer.from(s),
        );
        pieces.push(Buffer.from('ff', 'hex'), Buffer.from('e282', 'hex'), Buffer.from('eda080', 'hex'), Buffer.from('f4908080', 'hex'));
        let seed = 7;
        const parts: Buffer[] = [];
        for (let size = 0; size < 1 << 20; ) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          const p = pieces[seed % pieces.length]!;
          parts.push(p);
          size += p.length;
        }
        const input = Buffer.concat(parts);
        const cuts: number[] = [];
        for (let at = 0; at < input.length; at += 1 + (at % 65_521)) cuts.push(at);
        assert.ok(nativeStreamed(splitAt(input, cuts), path).equals(upcase(input)));
        assert.ok(nativeStreamed([input], path).equals(upcase(input)));
      });
    });
  }
});

const servers: UpcaseServer[] = [];

async function server(options: ServerOptions): Promise<UpcaseServer> {
  const s = await startServer({ host: '127.0.0.1', port: 0, udp: false, ...options });
  servers.push(s);
  return s;
}

describe('a server on either transport', { concurrency: false }, () => {
  test.after(() => Promise.all(servers.splice(0).map((s) => s.close())));

  test('the listening line names the TCP transport and, on native, the codec path', async () => {
    const logs = { native: captureLogger('info'), stream: captureLogger('info') };
    for (const tcpTransport of ['native', 'stream'] as const) await server({ tcpTransport, logger: logs[tcpTransport].logger });
    const listening = (tcpTransport: 'native' | 'stream') => logs[tcpTransport].lines.find((l) => l.msg === 'listening');
    assert.equal(listening('native')?.tcpTransport, 'native');
    assert.equal(listening('native')?.tcpCodec, nativeCodecPaths()[0]);
    assert.equal(listening('stream')?.tcpTransport, 'stream');
    assert.equal(listening('stream')?.tcpCodec, undefined);
  });

  test('tcpTransport picks the transport; an unknown one is rejected', async () => {
    assert.equal((await server({})).tcpTransport, 'native');
    assert.equal((await server({ tcpTransport: 'native' })).tcpTransport, 'native');
    assert.equal((await server({ tcpTransport: 'stream' })).tcpTransport, 'stream');
    assert.equal((await server({ tcp: false, udp: true })).tcpTransport, null);
    await assert.rejects(startServer({ port: 0, tcpTransport: 'bogus' as never }), { code: 'UPCASE_ERR_INVALID_ARG' });
  });

  test('connections are really served by the addon (the hand-over does not fall back to streams)', async () => {
    const s = await server({});
    const native = (s as unknown as { dispatch: { native: { size: number } } }).dispatch.native;
    const sockets = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const socket = net.connect({ port: s.address().port, host: '127.0.0.1' });
        await once(socket, 'connect');
        socket.write('x');
        await once(socket, 'data');
        return socket;
      }),
    );
    assert.equal(native.size, 5);
    assert.equal(s.connectionCount, 5);
    for (const socket of sockets) socket.destroy();
    await until(() => native.size === 0 && s.connectionCount === 0, 'the connections to close');
  });

  test('the same conversations give the same replies and the same stats', async () => {
    const held = Buffer.from([0x61, 0xc3]); // 'a' then a lead byte the FIN leaves alone
    const conversations = [
      Buffer.from('hello, straße ﬃ ΐ'),
      held,
      Buffer.alloc(0),
      Buffer.alloc(300_000, 'ß'),
      Buffer.from([0xff, 0xed, 0xa0, 0x80]),
    ];
    const results = [];
    const logs = { native: captureLogger('debug'), stream: captureLogger('debug') };
    for (const tcpTransport of ['native', 'stream'] as const) {
      const s = await server({ tcpTransport, logger: logs[tcpTransport].logger });
      const { port } = s.address();
      const replies = [];
      for (const input of conversations) replies.push(await tcpRoundTrip(port, input));
      // A client that resets its connection: counted by code, others unaffected.
      const reset = net.connect({ port, host: '127.0.0.1' });
      reset.on('error', () => {});
      await once(reset, 'connect');
      reset.write('x');
      await once(reset, 'data');
      reset.resetAndDestroy();
      await until(() => s.stats.connectionsOpen === 0, 'every connection closed');
      const { tcpBytesIn, tcpBytesOut, connectionsTotal, connectionsOpen, errors } = s.stats;
      results.push({ replies, stats: { tcpBytesIn, tcpBytesOut, connectionsTotal, connectionsOpen, errors } });
    }
    const [nat, stream] = results;
    assert.deepEqual(nat!.replies, stream!.replies);
    conversations.forEach((input, i) => {
      assert.deepEqual(nat!.replies[i], upcase(input));
    });
    assert.deepEqual(nat!.stats, stream!.stats);
    assert.deepEqual(nat!.stats.errors, { ECONNRESET: 1 });
    // Both log the reset the same way: its code, a readable message, and who it was.
    for (const { lines } of Object.values(logs)) {
      const error = lines.find((l) => l.msg === 'connection error');
      assert.equal(error?.code, 'ECONNRESET');
      assert.match(String(error?.err), /reset/i);
      assert.equal(error?.remoteAddress, '127.0.0.1');
    }
  });

  test('servers in worker threads share the addon; a worker exiting leaves the main thread serving', async () => {
    const main = await server({});
    const dist = new URL('../../dist/index.js', import.meta.url).href;
    const code = `
      const { parentPort } = require('node:worker_threads');
      import(${JSON.stringify(dist)}).then(async ({ startServer }) => {
        const s = await startServer({ host: '127.0.0.1', port: 0, udp: false });
        parentPort.postMessage({ port: s.address().port, transport: s.tcpTransport });
        parentPort.once('message', () => s.close().then(() => process.exit(0)));
      });`;
    for (let k = 0; k < 2; k++) {
      const worker = new Worker(code, { eval: true });
      const [{ port, transport }] = (await once(worker, 'message')) as [{ port: number; transport: string }];
      assert.equal(transport, 'native');
      assert.equal((await tcpRoundTrip(port, 'worker ß')).toString(), 'WORKER SS');
      worker.postMessage('stop');
      await once(worker, 'exit');
      assert.equal((await tcpRoundTrip(main.address().port, 'main ΐ')).toString(), upcase(Buffer.from('main ΐ')).toString());
    }
  });

  test('with PROXY protocol, the bytes after the header (same packet) are answered first', async () => {
    const s = await server({ proxyProtocol: true, trustedProxies: '127.0.0.1/32' });
    assert.equal(s.tcpTransport, 'native');
    const header = 'PROXY TCP4 192.0.2.1 192.0.2.2 40000 12000\r\n';
    const reply = await tcpRoundTrip(
      s.address().port,
      Buffer.concat([Buffer.from(header), Buffer.from('hello straße'), Buffer.from([0xc3])]),
    );
    assert.deepEqual(reply, Buffer.concat([Buffer.from('HELLO STRASSE'), Buffer.from([0xc3])]));
    assert.equal(s.stats.proxyAccepted, 1);
    // Header and payload in separate writes, the payload after a pause.
    const socket = net.connect({ port: s.address().port, host: '127.0.0.1' });
    await once(socket, 'connect');
    socket.write(header);
    await new Promise((r) => setTimeout(r, 50));
    socket.write('second ');
    const [first] = (await once(socket, 'data')) as [Buffer];
    assert.equal(first.toString(), 'SECOND ');
    socket.destroy();
  });

  test('close() without drain closes natively served connections, and the counts return to 0', async () => {
    const s = await server({});
    const sockets = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const socket = net.connect({ port: s.address().port, host: '127.0.0.1' });
        socket.on('error', () => {});
        await once(socket, 'connect');
        socket.write('hi');
        await once(socket, 'data');
        return socket;
      }),
    );
    assert.equal(s.connectionCount, 20);
    const closed = sockets.map((socket) => once(socket, 'close'));
    await s.close();
    await Promise.all(closed);
    assert.equal(s.connectionCount, 0);
    assert.equal(s.stats.connectionsOpen, 0);
  });
});
