/**
 * Stats stay plain data: `server.stats` is a snapshot that sums what JavaScript
 * counts and what the native TCP transport counts in C, with no accessors grafted
 * on; the metrics registry reads it live through a function, and refuses a
 * snapshot, which would never change.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createMetricsRegistry } from '../../src/server/metrics.js';
import { startServer } from '../../src/server/server.js';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { parseMetrics } from '../helpers/operator.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { until } from '../helpers/wait.js';

const NATIVE_MISSING = loadNativeTcp() === null ? 'the native TCP transport is not built here' : false;

describe('server.stats', () => {
  for (const [tcpTransport, skip] of [
    ['stream', false],
    ['native', NATIVE_MISSING],
  ] as const) {
    test(`${tcpTransport}: bytes and timeouts in server.stats and in the metrics, read live`, { skip }, async (t) => {
      const server = await startServer({ host: '127.0.0.1', port: 0, udp: false, tcpTransport, idleTimeout: 0.2 });
      t.after(() => server.close());
      const registry = createMetricsRegistry({ stats: () => server.stats, processMetrics: false, registry: new Registry() });
      const { port } = server.address();
      assert.equal((await tcpRoundTrip(port, 'hello, straße')).toString(), 'HELLO, STRASSE');
      const idle = net.connect({ port, host: '127.0.0.1' });
      idle.on('error', () => {});
      await once(idle, 'close');
      await until(() => server.connectionCount === 0, 'both connections closed');

      const stats = server.stats;
      assert.equal(stats.tcpBytesIn, Buffer.byteLength('hello, straße'));
      assert.equal(stats.tcpBytesOut, Buffer.byteLength('HELLO, STRASSE'));
      // The idle client's, at least (on a loaded machine the round trip may idle out too).
      assert.ok(stats.idleTimeouts >= 1, `idleTimeouts ${stats.idleTimeouts}`);
      assert.equal(stats.connectionsTotal, 2);
      const m = parseMetrics(await registry.metrics());
      assert.equal(m.get('upcase_bytes_received_total{transport="tcp"}'), stats.tcpBytesIn);
      assert.equal(m.get('upcase_bytes_sent_total{transport="tcp"}'), stats.tcpBytesOut);
      assert.equal(m.get('upcase_timeouts_total{kind="idle"}'), stats.idleTimeouts);

      // Live: a later scrape sees later traffic.
      const before = stats.tcpBytesIn;
      await tcpRoundTrip(port, 'more');
      const later = parseMetrics(await registry.metrics());
      assert.equal(later.get('upcase_bytes_received_total{transport="tcp"}'), before + 4);
      assert.equal(server.stats.tcpBytesIn, before + 4);
    });
  }

  test('is plain data: a frozen snapshot with no accessors, which a registry refuses to keep', async (t) => {
    const server = await startServer({ host: '127.0.0.1', port: 0, udp: false });
    t.after(() => server.close());
    const stats = server.stats;
    for (const [key, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(stats))) {
      assert.equal(descriptor.get, undefined, `${key} has a getter`);
      assert.equal(descriptor.set, undefined, `${key} has a setter`);
    }
    assert.ok(Object.isFrozen(stats) && Object.isFrozen(stats.errors));
    assert.notEqual(server.stats, stats, 'each read is a new snapshot');
    assert.throws(() => createMetricsRegistry({ stats, processMetrics: false, registry: new Registry() }), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: /`stats`.*`\(\) => server\.stats`/,
    });
  });
});
