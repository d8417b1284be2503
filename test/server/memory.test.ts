import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { countObjects } from '../helpers/heap.js';
import { TcpPeer, tcpRoundTrip, UdpPeer } from '../helpers/roundtrip.js';
import { rssBytes, serverFor, startServe } from '../helpers/serve.js';
import { delay, waitForDrain, within } from '../helpers/wait.js';

const MiB = 1024 * 1024;

/**
 * Acceptance: a client that sends (up to) 1 GiB and never reads does not grow
 * the server's memory by more than a few MiB, and the server keeps serving
 * others meanwhile. The server runs in its own process so its RSS means
 * something.
 */
test('a client that writes and never reads does not grow the server RSS', async (t) => {
  const serve = await startServe(['--log-level', 'warn', '--drain-timeout', '1'], { t });
  const { port } = serve;

  // Warm up the same paths (reads, writes, codec, GC) so the baseline is not the cold start.
  const warm = Buffer.alloc(4 * MiB, 'w');
  for (let i = 0; i < 3; i++) assert.equal((await tcpRoundTrip(port, warm)).length, warm.length);
  await delay(300);
  const baseline = rssBytes(serve.pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(serve.pid));
  }, 50);
  t.after(() => clearInterval(sampler));

  const hog = net.connect({ port, host: '127.0.0.1' });
  t.after(() => hog.destroy());
  await once(hog, 'connect');
  hog.pause(); // never read a byte of the replies
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let written = 0;
  let stalled = false;
  const started = Date.now();
  while (written < 1024 * MiB && Date.now() - started < 30_000) {
    written += chunk.length;
    if (!hog.write(chunk) && (await waitForDrain(hog, 2_000)) !== 'drain') {
      stalled = true;
      break;
    }
  }
  t.diagnostic(`hog wrote ${(written / MiB).toFixed(1)} MiB before its writes stalled (${Date.now() - started} ms)`);
  assert.ok(stalled, `writes never stalled: the server read all ${written} bytes`);

  // While the hog sits there, another client is still served, on TCP and UDP.
  const other = Buffer.from('still served: straße '.repeat(10_000), 'utf8');
  assert.ok((await within(10_000, 'other client', tcpRoundTrip(port, other))).equals(upcase(other)));
  const udp = await UdpPeer.open();
  t.after(() => udp.close());
  await udp.send('udp too', port);
  assert.equal((await udp.next()).toString(), 'UDP TOO');

  await delay(200);
  peak = Math.max(peak, rssBytes(serve.pid));
  clearInterval(sampler);
  const growth = peak - baseline;
  t.diagnostic(
    `server RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB`,
  );
  assert.ok(growth < 16 * MiB, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB`);

  hog.destroy();
  assert.deepEqual(await serve.stop('SIGTERM'), { code: 0, signal: null });
});

test('a natively served idle connection keeps no net.Socket (docs/benchmarks.md, memory per idle connection)', {
  skip: loadNativeTcp() === null ? 'the native TCP transport is not built here' : false,
}, async (t) => {
  const server = await serverFor(t, { udp: false, tcpTransport: 'native', maxConnectionsPerSource: 0 });
  const { port } = server.address();
  const count = 100;
  const clients: TcpPeer[] = [];
  t.after(() => {
    for (const c of clients) c.destroy();
  });
  for (let i = 0; i < count; i++) {
    const client = await TcpPeer.connect(port);
    clients.push(client);
    await client.write('hello');
    assert.equal((await client.waitForBytes(5)).toString(), 'HELLO');
  }
  assert.equal(server.connectionCount, count);
  // The clients' own sockets are `count` of them; the server's were handed to the addon and
  // destroyed. A closure kept for the connection's close used to keep each of them (about 1 KiB).
  const { Socket: sockets } = await countObjects(['Socket']);
  t.diagnostic(`${count} natively served idle connections, ${sockets} net.Socket objects in the heap`);
  assert.ok(sockets! < count * 1.25, `${sockets} net.Socket objects for ${count} client sockets`);
});
