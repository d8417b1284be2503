import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { type ConnectionsPage, mergePages, parseConnectionsQuery } from '../../src/server/connections.js';
import { createMetricsRegistry, startMetricsServer } from '../../src/server/metrics.js';
import type { ServerOptions } from '../../src/options.js';
import { UpcaseServer } from '../../src/server/server.js';
import { createStats } from '../../src/stats.js';
import { escapeHtml, parseExposition, StatusPage } from '../../src/server/status-page.js';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { parseMetrics } from '../helpers/operator.js';
import { TcpPeer } from '../helpers/roundtrip.js';
import { until } from '../helpers/wait.js';
import { makePki, type TestPki } from '../helpers/pki.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** A connection from `localAddress` that has had `payload` answered, left open. */
async function openClient(port: number, localAddress: string, payload: string): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  await once(socket, 'connect');
  socket.write(payload);
  let got = '';
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= payload.length) resolve();
    });
    socket.once('error', reject);
  });
  assert.equal(got, payload.toUpperCase());
  return socket;
}

/** A server with TLS on a free port (not listening yet) and its test PKI, both gone when the test ends. */
function tlsServer(t: TestContext, options: ServerOptions = {}): { server: UpcaseServer; pki: TestPki } {
  const pki = makePki();
  t.after(() => pki.remove());
  const server = new UpcaseServer({
    host: '127.0.0.1',
    port: 0,
    udp: false,
    tlsCert: pki.server.cert,
    tlsKey: pki.server.key,
    tlsPort: 0,
    ...options,
  });
  t.after(() => server.close());
  return { server, pki };
}

describe('operator metrics', () => {
  it('export the build, the limits in force and no certificate without TLS', async (t) => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0, maxConnections: 7, udpRateLimit: 5, udpRateBurst: 9, idleTimeout: 12 });
    const registry = createMetricsRegistry({ stats: () => server.stats, info: () => server.info(), processMetrics: false });
    assert.equal(parseMetrics(await registry.metrics()).has('upcase_max_connections'), false, 'nothing before listening');
    await server.listen();
    t.after(() => server.close());
    const m = parseMetrics(await registry.metrics());
    const codec = server.tcpTransport === 'native' ? server.info()!.tcpCodec : 'js';
    assert.notEqual(codec, 'none');
    const build =
      `upcase_build_info{version="${VERSION}",node_version="${process.versions.node}",tcp_transport="${server.tcpTransport}",` +
      `udp_transport="${server.udpTransport}",tcp_codec="${codec}"}`;
    assert.equal(m.get(build), 1, [...m.keys()].filter((k) => k.startsWith('upcase_build')).join());
    assert.equal(m.get('upcase_max_connections'), 7);
    assert.equal(m.get('upcase_udp_rate_limit'), 5);
    assert.equal(m.get('upcase_udp_rate_burst'), 9);
    assert.equal(m.get('upcase_idle_timeout_seconds'), 12);
    assert.equal(m.get('upcase_write_timeout_seconds'), 30);
    const start = m.get('upcase_start_time_seconds')!;
    assert.ok(Math.abs(start - Date.now() / 1000) < 60, `start time ${start}`);
    assert.ok(![...m.keys()].some((k) => k.startsWith('upcase_tls_certificate')), 'no certificate series without TLS');
  });

  it('export the TLS certificate expiry, and its successor after a reload', async (t) => {
    const { server, pki } = tlsServer(t);
    const registry = createMetricsRegistry({ stats: () => server.stats, info: () => server.info(), processMetrics: false });
    await server.listen();
    const notAfter = (file: string): number => new Date(new X509Certificate(readFileSync(file)).validTo).getTime() / 1000;
    let m = parseMetrics(await registry.metrics());
    assert.equal(m.get('upcase_tls_certificate_expiry_timestamp_seconds{serial="1001"}'), notAfter(pki.server.cert));
    await server.reloadTls({ cert: pki.server2.cert, key: pki.server2.key });
    m = parseMetrics(await registry.metrics());
    assert.equal(m.get('upcase_tls_certificate_expiry_timestamp_seconds{serial="2002"}'), notAfter(pki.server2.cert));
    assert.equal(m.has('upcase_tls_certificate_expiry_timestamp_seconds{serial="1001"}'), false);
  });

  it('aggregate across workers without multiplying: build_info 1, limits per worker, earliest certificate', async () => {
    const worker = (slot: number, notAfter: number, maxConnections: number): Registry => {
      const registry = new Registry();
      createMetricsRegistry({
        stats: createStats(),
        registry,
        processMetrics: false,
        worker: slot,
        info: () => ({
          version: '1.2.3',
          nodeVersion: '20.0.0',
          tcpTransport: 'native',
          tcpCodec: 'sse2',
          udpTransport: 'dgram',
          tls: true,
          maxConnections,
          idleTimeout: 60,
          writeTimeout: 30,
          udpRateLimit: 100,
          udpRateBurst: 100,
          certificate: { serialNumber: '01', notAfter },
          startTime: 1000 + slot,
        }),
      });
      return registry;
    };
    const answers = await Promise.all([worker(1, 5000, 100), worker(2, 4000, 90)].map((r) => r.getMetricsAsJSON()));
    const m = parseMetrics(await AggregatorRegistry.aggregate(answers).metrics());
    assert.equal(
      m.get('upcase_build_info{version="1.2.3",node_version="20.0.0",tcp_transport="native",udp_transport="dgram",tcp_codec="sse2"}'),
      1,
    );
    assert.equal(m.get('upcase_max_connections{worker="1"}'), 100);
    assert.equal(m.get('upcase_max_connections{worker="2"}'), 90);
    assert.equal(m.get('upcase_udp_rate_limit{worker="2"}'), 100);
    assert.equal(m.get('upcase_tls_certificate_expiry_timestamp_seconds{serial="01"}'), 4000);
    assert.equal(m.get('upcase_start_time_seconds'), 1001);
  });
});

for (const tcpTransport of ['stream', 'native'] as const) {
  describe(`/connections (${tcpTransport} transport)`, {
    skip: tcpTransport === 'native' && loadNativeTcp() === null ? 'the native TCP addon is not built here' : false,
  }, () => {
    it('lists exactly the open connections, by client address, with bytes, age, idle time, and never payload', async (t) => {
      const server = new UpcaseServer({ host: '127.0.0.1', port: 0, udp: false, tcpTransport });
      const { port } = await server.listen();
      const endpoint = await startMetricsServer({
        port: 0,
        source: createMetricsRegistry({ stats: () => server.stats, info: () => server.info(), processMetrics: false }),
        ready: () => true,
        connections: (q) => server.listConnections(q),
      });
      t.after(() => Promise.all([server.close(), endpoint.close()]));
      const base = `http://127.0.0.1:${endpoint.address()!.port}`;
      const secret = 'secret-payload-';
      const sockets: net.Socket[] = [];
      const addresses = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
      for (let i = 0; i < 7; i++) sockets.push(await openClient(port, addresses[i % 3]!, `${secret}${i}`));
      t.after(() => {
        for (const s of sockets) s.destroy();
      });

      const res = await fetch(`${base}/connections`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const text = await res.text();
      assert.doesNotMatch(text.toLowerCase(), /secret/, 'no payload');
      const page = JSON.parse(text) as ConnectionsPage;
      assert.equal(page.total, 7);
      assert.equal(page.connections.length, 7);
      const localPorts = sockets.map((s) => s.localPort);
      assert.deepEqual(
        page.connections.map((c) => [c.client.address, c.client.port]),
        localPorts.map((p, i) => [addresses[i % 3], p]),
        'oldest first, with each client address and port',
      );
      for (const [i, c] of page.connections.entries()) {
        assert.equal(c.transport, 'tcp');
        assert.equal(c.engine, tcpTransport);
        assert.equal(c.state, 'open');
        assert.equal(c.proxy, null);
        assert.equal(c.bytesIn, `${secret}${i}`.length);
        assert.equal(c.bytesOut, `${secret}${i}`.length);
        assert.equal(c.replyOwed, false);
        assert.ok(c.ageSeconds >= 0 && c.ageSeconds < 60);
        assert.ok(c.idleSeconds >= 0 && c.idleSeconds <= c.ageSeconds + 0.01, `idle ${c.idleSeconds} age ${c.ageSeconds}`);
      }

      // Pages: limit and offset; total stays the whole count.
      const second = (await (await fetch(`${base}/connections?limit=3&offset=3`)).json()) as ConnectionsPage;
      assert.equal(second.total, 7);
      assert.deepEqual(
        second.connections.map((c) => c.client.port),
        localPorts.slice(3, 6),
      );
      assert.equal(((await (await fetch(`${base}/connections?offset=100`)).json()) as ConnectionsPage).connections.length, 0);
      for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'offset=-1', 'limit=1e3']) {
        const r = await fetch(`${base}/connections?${bad}`);
        assert.equal(r.status, 400, bad);
        assert.match(await r.text(), /^Expected `(limit|offset)` to be an integer from/);
      }

      // Closed connections leave the list.
      sockets[0]!.destroy();
      await until(() => server.connectionCount === 6, 'the close');
      const after = (await (await fetch(`${base}/connections`)).json()) as ConnectionsPage;
      assert.equal(after.total, 6);
      assert.equal(after.connections[0]!.client.port, localPorts[1]);
    });

    it('shows a reply owed to a client that does not read', async (t) => {
      const server = new UpcaseServer({ host: '127.0.0.1', port: 0, udp: false, tcpTransport, writeTimeout: 0, idleTimeout: 0 });
      const { port } = await server.listen();
      t.after(() => server.close());
      const socket = net.connect({ host: '127.0.0.1', port });
      t.after(() => socket.destroy());
      await once(socket, 'connect');
      socket.pause();
      const chunk = Buffer.alloc(64 * 1024, 'a');
      // Bounded: stop once the server owes replies, or after 64 MiB.
      let owed = false;
      for (let i = 0; i < 1024 && !owed; i++) {
        if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), new Promise((r) => setTimeout(r, 50))]);
        if (i % 16 === 15) owed = server.listConnections({ offset: 0, limit: 1 }).connections[0]?.replyOwed === true;
      }
      const [c] = server.listConnections({ offset: 0, limit: 1 }).connections;
      assert.equal(c?.replyOwed, true);
      assert.ok(c!.owedBytes > 0);
      assert.ok(c!.bytesIn > c!.owedBytes);
    });
  });
}

describe('/connections with PROXY protocol and TLS', () => {
  it('gives the address from the PROXY header, with the proxy beside it', async (t) => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0, udp: false, proxyProtocol: true });
    const { port } = await server.listen();
    t.after(() => server.close());
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    await until(() => server.listConnections({ offset: 0, limit: 1 }).connections[0]?.state === 'proxy', 'the proxy state');
    socket.write('PROXY TCP4 203.0.113.7 192.0.2.1 40000 12000\r\nhi');
    await once(socket, 'data');
    const [c] = server.listConnections({ offset: 0, limit: 10 }).connections;
    assert.deepEqual(c?.client, { address: '203.0.113.7', port: 40000 });
    assert.deepEqual(c?.proxy, { address: '127.0.0.2', port: socket.localPort, version: 1 });
    assert.equal(c?.bytesIn, 2);
  });

  it('lists TLS connections with transport tls and their decrypted byte counts', async (t) => {
    const { server, pki } = tlsServer(t, { tcp: false });
    const { tlsPort } = await server.listen();
    const client = await TcpPeer.tls(tlsPort!, { ca: pki.ca });
    t.after(() => client.socket.destroy());
    await client.write('hello');
    await until(() => server.listConnections({ offset: 0, limit: 1 }).connections[0]?.bytesOut === 5, 'the reply');
    const [c] = server.listConnections({ offset: 0, limit: 1 }).connections;
    assert.equal(c?.transport, 'tls');
    assert.equal(c?.engine, 'stream');
    assert.equal(c?.bytesIn, 5);
  });
});

describe('connection pages', () => {
  it('parse limit and offset with defaults and bounds', () => {
    assert.deepEqual(parseConnectionsQuery(new URLSearchParams('')), { limit: 100, offset: 0 });
    assert.deepEqual(parseConnectionsQuery(new URLSearchParams('limit=1000&offset=5')), { limit: 1000, offset: 5 });
    assert.deepEqual(parseConnectionsQuery(new URLSearchParams('limit=1001')), {
      error: 'Expected `limit` to be an integer from 1 to 1000, got `1001`',
    });
  });

  it('merge workers oldest first, then cut the page', () => {
    const conn = (id: number, age: number) => ({
      id,
      client: { address: '127.0.0.1', port: id },
      proxy: null,
      transport: 'tcp' as const,
      engine: 'stream' as const,
      state: 'open' as const,
      openedAt: 1000 - age,
      ageSeconds: age,
      bytesIn: 0,
      bytesOut: 0,
      idleSeconds: 0,
      replyOwed: false,
      owedBytes: 0,
    });
    const page = (total: number, ...c: ReturnType<typeof conn>[]): ConnectionsPage => ({ total, offset: 0, limit: 3, connections: c });
    const merged = mergePages(
      [
        { worker: 1, page: page(5, conn(1, 50), conn(2, 30), conn(3, 10)) },
        { worker: 2, page: page(2, conn(1, 40), conn(2, 20)) },
      ],
      { offset: 1, limit: 2 },
    );
    assert.equal(merged.total, 7);
    assert.deepEqual(
      merged.connections.map((c) => [c.worker, c.id]),
      [
        [2, 1],
        [1, 2],
      ],
    );
  });
});

describe('status page', () => {
  it('escapes what it shows, and computes rates from two renders', async () => {
    let now = 1_000_000;
    let bytes = 1000;
    const metrics = async (): Promise<string> =>
      [
        'upcase_build_info{version="<script>alert(1)</script>",node_version="20",tcp_transport="stream",udp_transport="dgram",tcp_codec="js"} 1',
        'upcase_connections_open 3',
        'upcase_max_connections 4',
        `upcase_bytes_received_total{transport="tcp"} ${bytes}`,
        'upcase_udp_drops_total{reason="rate_limited"} 5',
      ].join('\n');
    const page = new StatusPage({ metrics, now: () => now });
    const first = await page.render();
    assert.doesNotMatch(first, /<script>alert/);
    assert.match(first, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(first, /<span id="connections-open">3<\/span> \/ <span id="connections-limit">4<\/span>/);
    assert.match(first, /<td id="rate-bytes">–/);
    assert.match(first, /<td id="drops-rate_limited">5<\/td>/);
    now += 2000;
    bytes += 500;
    assert.match(await page.render(), /<td id="rate-bytes">250 \//);
    assert.equal(escapeHtml(`a&b"'<>`), 'a&amp;b&quot;&#39;&lt;&gt;');
  });

  it('parses label values with escapes', () => {
    assert.deepEqual(parseExposition('m{a="x\\"y",b="1"} 2\n# HELP x\nn 3'), [
      { name: 'm', labels: { a: 'x"y', b: '1' }, value: 2 },
      { name: 'n', labels: {}, value: 3 },
    ]);
  });
});
