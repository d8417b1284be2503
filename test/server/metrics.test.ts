import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { createMetricsRegistry, MetricsServer, startMetricsServer } from '../../src/server/metrics.js';
import { UpcaseServer } from '../../src/server/server.js';
import { createStats } from '../../src/stats.js';
import { parseMetrics, status } from '../helpers/operator.js';
import { tcpRoundTrip, udpRoundTrip } from '../helpers/roundtrip.js';

describe('createMetricsRegistry', () => {
  it('reads the plain counters at scrape time, with labels', async () => {
    const stats = createStats();
    const registry = createMetricsRegistry({ stats, processMetrics: false });
    stats.connectionsOpen = 3;
    stats.connectionsTotal = 10;
    stats.connectionsRefused = 2;
    stats.connectionsRefusedPerSource = 4;
    stats.tcpBytesIn = 100;
    stats.tcpBytesOut = 101;
    stats.udpBytesIn = 50;
    stats.udpBytesOut = 40;
    stats.tlsBytesIn = 30;
    stats.tlsBytesOut = 31;
    stats.tlsHandshakes = 6;
    stats.tlsHandshakeErrors = 3;
    stats.udpDatagramsIn = 5;
    stats.udpDatagramsOut = 4;
    stats.udpDrops.rate_limited = 1;
    stats.errors.ECONNRESET = 7;
    stats.idleTimeouts = 1;
    stats.writeTimeouts = 2;
    stats.proxyAccepted = 6;
    stats.proxyRejected.untrusted = 3;
    const m = parseMetrics(await registry.metrics());
    assert.deepEqual(Object.fromEntries(m), {
      upcase_connections_open: 3,
      upcase_connections_total: 10,
      upcase_connections_refused_total: 2,
      upcase_connections_refused_per_source_total: 4,
      'upcase_bytes_received_total{transport="tcp"}': 100,
      'upcase_bytes_received_total{transport="udp"}': 50,
      'upcase_bytes_received_total{transport="tls"}': 30,
      'upcase_bytes_sent_total{transport="tcp"}': 101,
      'upcase_bytes_sent_total{transport="udp"}': 40,
      'upcase_bytes_sent_total{transport="tls"}': 31,
      upcase_tls_handshakes_total: 6,
      upcase_tls_handshake_errors_total: 3,
      upcase_datagrams_received_total: 5,
      upcase_datagrams_sent_total: 4,
      'upcase_udp_drops_total{reason="port_zero"}': 0,
      'upcase_udp_drops_total{reason="low_port"}': 0,
      'upcase_udp_drops_total{reason="loop"}': 0,
      'upcase_udp_drops_total{reason="rate_limited"}': 1,
      'upcase_udp_drops_total{reason="simulated"}': 0,
      'upcase_udp_drops_total{reason="too_large"}': 0,
      'upcase_udp_drops_total{reason="send_error"}': 0,
      'upcase_errors_total{code="ECONNRESET"}': 7,
      upcase_proxy_accepted_total: 6,
      'upcase_proxy_rejected_total{reason="untrusted"}': 3,
      'upcase_proxy_rejected_total{reason="missing"}': 0,
      'upcase_proxy_rejected_total{reason="malformed"}': 0,
      'upcase_proxy_rejected_total{reason="too_large"}': 0,
      'upcase_proxy_rejected_total{reason="truncated"}': 0,
      'upcase_proxy_rejected_total{reason="timeout"}': 0,
      'upcase_timeouts_total{kind="idle"}': 1,
      'upcase_timeouts_total{kind="write"}': 2,
    });
    // Counters follow the stats, not the scrapes.
    stats.connectionsTotal = 11;
    assert.equal(parseMetrics(await registry.metrics()).get('upcase_connections_total'), 11);
    assert.match(await registry.metrics(), /# TYPE upcase_connections_total counter/);
    assert.match(await registry.metrics(), /# TYPE upcase_connections_open gauge/);
  });

  it('adds the process metrics unless told not to', async () => {
    const m = parseMetrics(await createMetricsRegistry({ stats: createStats(), registry: new Registry() }).metrics());
    assert.ok(m.has('process_cpu_seconds_total'));
    assert.ok(m.has('nodejs_heap_size_used_bytes'));
  });
});

describe('MetricsServer', () => {
  it('serves live traffic totals, health and readiness through the server lifecycle', async (t) => {
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0, drainTimeout: 5 });
    const endpoint = await startMetricsServer({
      port: 0,
      source: createMetricsRegistry({ stats: () => server.stats, processMetrics: false }),
      ready: () => server.state === 'listening',
    });
    t.after(() => Promise.all([server.close(), endpoint.close()]));
    const address = endpoint.address()!;
    assert.equal(address.host, '127.0.0.1'); // the default host
    const base = `http://127.0.0.1:${address.port}`;

    assert.equal(await status(base, '/healthz'), 200);
    assert.equal(await status(base, '/readyz'), 503, 'not ready before listening');
    const { port } = await server.listen();
    assert.equal(await status(base, '/readyz'), 200);

    assert.equal((await tcpRoundTrip(port, 'hello')).toString(), 'HELLO');
    assert.equal(String(await udpRoundTrip(port, 'straße')), 'STRASSE');
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(await res.text());
    assert.equal(m.get('upcase_connections_total'), 1);
    assert.equal(m.get('upcase_bytes_received_total{transport="tcp"}'), 5);
    assert.equal(m.get('upcase_datagrams_received_total'), 1);
    assert.equal(m.get('upcase_bytes_received_total{transport="udp"}'), Buffer.byteLength('straße'));
    assert.equal(m.get('upcase_bytes_sent_total{transport="udp"}'), Buffer.byteLength('STRASSE'));

    // Draining: an open connection holds the drain; readiness is false at once, liveness stays true.
    const open = net.connect({ host: '127.0.0.1', port });
    await once(open, 'connect');
    const closed = server.close({ drain: true });
    assert.equal(server.state, 'draining');
    assert.equal(await status(base, '/readyz'), 503);
    assert.equal(await status(base, '/healthz'), 200);
    // The drained connection still works until the client finishes.
    open.write('still here');
    const [reply] = (await once(open, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'STILL HERE');
    open.end();
    await closed;
    assert.equal(await status(base, '/readyz'), 503);
  });

  it('answers 404 for unknown paths, 405 for other methods, and HEAD without a body', async (t) => {
    const endpoint = await startMetricsServer({ port: 0, source: new Registry(), ready: () => true });
    t.after(() => endpoint.close());
    const base = `http://127.0.0.1:${endpoint.address()!.port}`;
    assert.equal(await status(base, '/nope'), 404);
    assert.equal(await status(base, '/connections'), 404, 'no /connections without a source');
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  it('answers 500 when collecting fails, and keeps serving', async (t) => {
    let fail = true;
    const source = { contentType: 'text/plain', metrics: async () => (fail ? Promise.reject(new Error('boom')) : 'ok 1\n') };
    const endpoint = await startMetricsServer({ port: 0, source, ready: () => true });
    t.after(() => endpoint.close());
    const base = `http://127.0.0.1:${endpoint.address()!.port}`;
    assert.equal(await status(base, '/metrics'), 500);
    fail = false;
    assert.equal(await status(base, '/metrics'), 200);
  });

  it('rejects a taken port with UPCASE_ERR_LISTEN, and bad options with UPCASE_ERR_INVALID_ARG', async (t) => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    t.after(() => taken.close());
    const port = (taken.address() as net.AddressInfo).port;
    await assert.rejects(startMetricsServer({ port, source: new Registry(), ready: () => true }), {
      code: 'UPCASE_ERR_LISTEN',
      message: new RegExp(`^metrics endpoint: cannot listen on 127\\.0\\.0\\.1:${port}`),
    });
    assert.throws(() => new MetricsServer({ port: 70000, source: new Registry(), ready: () => true }), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: 'Expected `metricsPort` to be an integer port from 0 to 65535, got `70000`',
    });
  });

  it('close() ends keep-alive scrape connections and is idempotent', async () => {
    const endpoint = await startMetricsServer({ port: 0, source: new Registry(), ready: () => true });
    const socket = net.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
    await once(socket, 'connect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'data');
    const closedSocket = once(socket, 'close');
    await Promise.all([endpoint.close(), endpoint.close()]);
    await closedSocket;
  });
});
