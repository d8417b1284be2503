// The operator's view of `upcase serve` as a user runs it: /metrics, /connections and the status page,
// in one process and with --workers 2, for 37 connections held open from three source addresses.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { describe, it } from 'node:test';
import { allConnections, countByAddress, holdConnections } from '../helpers/operator.js';
import { scrape } from '../helpers/operator.js';
import { spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

const HELD = 37;
const BY_ADDRESS = { '127.0.0.1': 13, '127.0.0.2': 12, '127.0.0.3': 12 };

for (const workers of [1, 2]) {
  describe(`serve --workers ${workers}: the operator's view`, () => {
    it(`lists exactly ${HELD} held connections, and the metrics and the status page agree`, async (t) => {
      const p = spawnServe(['--metrics-port', '0', '--max-connections', '50', '--workers', String(workers), '--log-level', 'warn']);
      t.after(async () => {
        p.signal('SIGTERM');
        await p.exitWithin(15_000);
      });
      const { port, metrics: base } = await p.ready();
      let sockets: net.Socket[] = [];
      t.after(() => {
        for (const s of sockets) s.destroy();
      });
      sockets = await holdConnections(port, HELD);

      const m = await scrape(base!);
      assert.equal(m.get('upcase_connections_open'), HELD);
      const build = [...m].filter(([k]) => k.startsWith('upcase_build_info{'));
      assert.equal(build.length, 1, 'one build_info series');
      assert.equal(build[0]![1], 1, 'build_info is 1, not summed over workers');
      if (workers === 1) {
        assert.equal(m.get('upcase_max_connections'), 50);
      } else {
        assert.equal(m.get('upcase_max_connections{worker="1"}'), 50);
        assert.equal(m.get('upcase_max_connections{worker="2"}'), 50);
        assert.equal(m.get('upcase_udp_rate_limit{worker="1"}'), 100);
        assert.equal(m.get('upcase_workers_configured'), 2);
        assert.equal(m.get('upcase_workers'), 2);
      }

      const page = await allConnections(base!, 10);
      assert.equal(page.total, HELD);
      assert.equal(page.connections.length, HELD);
      assert.deepEqual(countByAddress(page), BY_ADDRESS);
      const ports = new Set(page.connections.map((c) => c.client.port));
      assert.deepEqual(ports, new Set(sockets.map((s) => s.localPort)), 'exactly the held connections, each once');
      if (workers === 2) {
        assert.deepEqual(new Set(page.connections.map((c) => c.worker)), new Set([1, 2]), 'both workers serve some');
      }

      const html = await (await fetch(`${base}/`)).text();
      // holdConnections sent `held N` on each: neither endpoint shows payload, in either case.
      assert.doesNotMatch(html, /held/i);
      assert.doesNotMatch(JSON.stringify(page), /held/i);
      assert.match(html, new RegExp(`<span id="connections-open">${HELD}</span> / <span id="connections-limit">${50 * workers}</span>`));
      for (const [address, n] of Object.entries(BY_ADDRESS)) {
        assert.match(html, new RegExp(`<tr><td>${address.replaceAll('.', '\\.')}</td><td class="n">${n}</td>`));
      }

      for (const s of sockets) s.destroy();
      await until(async () => (await allConnections(base!)).total === 0, 'the list to empty');
    });
  });
}

describe('serve: the limit gauge is the limit in force', () => {
  it('shows --max-connections lowered to fit the open-file limit, as the log says', async (t) => {
    const p = spawnServe(['--metrics-port', '0', '--max-connections', '1000', '--log-level', 'warn'], {
      prefix: ['prlimit', '--nofile=64:64'],
    });
    t.after(async () => {
      p.signal('SIGTERM');
      await p.exitWithin(15_000);
    });
    const { metrics: base } = await p.ready();
    const lowered = await p.log(
      (e) => e.msg === 'max connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE)',
    );
    const effective = lowered.effective as number;
    assert.ok(effective > 0 && effective < 64, `effective ${effective}`);
    assert.equal((await scrape(base!)).get('upcase_max_connections'), effective);
  });
});
