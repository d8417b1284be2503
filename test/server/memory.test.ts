import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { countObjects, heapCensus } from '../helpers/heap.js';
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

// Opens `count` connections to `port`, one round trip each, and holds them until its stdin closes.
const IDLE_CLIENTS = `
import net from 'node:net';
const [port, count] = process.argv.slice(1).map(Number);
const sockets = [];
for (let i = 0; i < count; i++) {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  sockets.push(s);
  s.write('hello');
  await new Promise((resolve) => s.once('data', resolve));
}
process.stdout.write('ready\\n');
process.stdin.on('end', () => process.exit(0)).resume();
`;

/**
 * What a server process keeps per idle connection, from heap snapshots before and after
 * `count` connections from a child process (so that no client object is counted).
 */
async function perIdleConnection(port: number, count: number): Promise<{ objects: number; bytes: number; nodes: Record<string, number> }> {
  const before = await heapCensus();
  const child = spawn(process.execPath, ['--input-type=module', '-e', IDLE_CLIENTS, String(port), String(count)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const [line] = await within(60_000, `${count} idle clients`, once(createInterface({ input: child.stdout! }), 'line'));
    assert.equal(line, 'ready');
    const after = await heapCensus();
    const nodes: Record<string, number> = {};
    for (const type of Object.keys(after.nodes)) nodes[type] = ((after.nodes[type] ?? 0) - (before.nodes[type] ?? 0)) / count;
    // Objects, closures, arrays and boxed numbers: what a JavaScript server allocates per connection.
    const objects = (nodes.object ?? 0) + (nodes.closure ?? 0) + (nodes.array ?? 0) + (nodes.number ?? 0) + (nodes.hidden ?? 0);
    return { objects, bytes: (after.bytes - before.bytes) / count, nodes };
  } finally {
    child.stdin!.end();
    await once(child, 'exit');
  }
}

test('an idle stream connection keeps no more heap objects than a naive Node server (docs/benchmarks.md, memory per idle connection)', async (t) => {
  const count = 300;
  // The naive server of the benchmarks (bench/peers/naive.mjs), in this process.
  const naive = net.createServer((socket) => {
    socket.on('data', (d) => socket.write(d.toString().toUpperCase()));
    socket.on('error', () => {});
  });
  naive.listen(0, '127.0.0.1');
  await once(naive, 'listening');
  t.after(() => naive.close());
  const server = await serverFor(t, { udp: false, tcpTransport: 'stream', maxConnectionsPerSource: 0, idleTimeout: 300 });
  const naivePort = (naive.address() as net.AddressInfo).port;
  const naiveOpen = (): Promise<number> =>
    new Promise((resolve, reject) => naive.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  // Every measurement starts with no connection open on either server.
  const measure = async (port: number, n: number) => {
    const result = await perIdleConnection(port, n);
    for (const started = Date.now(); server.connectionCount > 0 || (await naiveOpen()) > 0; await delay(20)) {
      assert.ok(Date.now() - started < 10_000, 'the connections were not released');
    }
    return result;
  };
  // A few each first, so that code compiled on a first connection is not counted.
  await measure(naivePort, 5);
  await measure(server.address().port, 5);
  const baseline = await measure(naivePort, count);
  const upcase = await measure(server.address().port, count);
  const round = (r: { objects: number; bytes: number }) => `${r.objects.toFixed(1)} objects, ${Math.round(r.bytes)} bytes`;
  t.diagnostic(`per idle connection: naive ${round(baseline)}; upcase stream ${round(upcase)}`);
  t.diagnostic(
    `upcase heap nodes per connection: ${JSON.stringify(upcase.nodes, (_, v) => (typeof v === 'number' ? Number(v.toFixed(2)) : v))}`,
  );
  // Naive keeps a net.Socket, two closures over it and their scope. The server keeps the
  // socket and one object, the `/connections` entry that is also the stream transport's
  // state, its listeners shared. A second object per connection, a second 'end' listener
  // (an array), a property added to the socket (a property array), a closure, a log-fields
  // object, a cached peer address or a Set node each add one to three objects: with the
  // entry and the state apart, a second 'end' listener and the peer-address slot the server
  // kept one more than naive (15.2 against 14.2); now about two fewer.
  assert.ok(
    upcase.objects <= baseline.objects,
    `upcase keeps ${upcase.objects.toFixed(1)} heap objects per idle connection, naive ${baseline.objects.toFixed(1)}`,
  );
});
