/**
 * Clients that send without ever reading, against the real server process with
 * its default options: they try to push 1 GiB each, backpressure stops them
 * after a few MiB, the server's RSS grows by less than 64 MiB, and other
 * clients keep being served meanwhile.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { floodWithoutReading, probe } from '../helpers/roundtrip.js';
import { rssBytes, type ReadyServe, startServe } from '../helpers/serve.js';
import { delay } from '../helpers/wait.js';

const MiB = 1 << 20;
let server: ReadyServe;

before(async () => {
  server = await startServe();
});
after(async () => {
  await server?.close();
});

test('two non-reading clients try to send 1 GiB each: RSS grows < 64 MiB and others are served', async (t) => {
  // Warm up (JIT, first buffers) so the baseline is the steady state.
  for (let i = 0; i < 5; i++) await probe(server.port);
  await delay(200);
  const baseline = rssBytes(server.pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    if (server.alive()) peak = Math.max(peak, rssBytes(server.pid));
  }, 50);

  // Meanwhile, other clients keep coming.
  let probing = true;
  let probes = 0;
  const prober = (async () => {
    while (probing) {
      await probe(server.port);
      probes++;
      await delay(100);
    }
  })();

  const hostile = await Promise.all(
    [Buffer.alloc(64 * 1024, 'a'), Buffer.from('ΐ'.repeat(32 * 1024))].map(async (chunk) => {
      const socket = net.connect({ port: server.port, host: '127.0.0.1' });
      socket.on('error', () => {});
      await once(socket, 'connect');
      return { socket, result: await floodWithoutReading(socket, { chunk, maxBytes: 1 << 30, quietMs: 1500, timeoutMs: 30_000 }) };
    }),
  );
  try {
    await delay(500);
    probing = false;
    await prober;
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(server.pid));

    for (const { result } of hostile) {
      assert.ok(result.stalled, 'the server never pushed back');
      assert.ok(result.sent < 256 * MiB, `the server took ${result.sent / MiB} MiB from a client that does not read`);
    }
    const growth = peak - baseline;
    t.diagnostic(
      `sent ${hostile.map(({ result }) => (result.sent / MiB).toFixed(1)).join(' + ')} MiB; RSS ${(baseline / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} MiB; ${probes} probes served`,
    );
    assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(probes >= 5, `only ${probes} other clients were served meanwhile`);
    assert.ok(server.alive());
  } finally {
    clearInterval(sampler);
    probing = false;
    for (const { socket } of hostile) socket.destroy();
  }
  await probe(server.port);
});
