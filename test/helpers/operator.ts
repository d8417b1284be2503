// Helpers for the operator's-view tests (/connections, the status page, Prometheus): one way to hold
// connections open from chosen source addresses, and one way to read a page of /connections.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { ClusterPrimary } from '../../src/server/cluster.js';
import type { ConnectionsPage } from '../../src/server/connections.js';
import { createMetricsRegistry } from '../../src/server/metrics.js';
import { createStats } from '../../src/stats.js';

/** The three loopback source addresses the tests hold connections from. */
export const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3'] as const;

/**
 * Opens `count` TCP connections to 127.0.0.1:`port`, round-robin from `sources`
 * (the client sockets' local address), each with one round trip done, and leaves
 * them open. Bounded: each connection must answer within 10 s.
 */
export async function holdConnections(port: number, count: number, sources: readonly string[] = SOURCES): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress: sources[i % sources.length] });
      sockets.push(socket);
      socket.setTimeout(10_000, () => socket.destroy(new Error(`connection ${i} timed out`)));
      await once(socket, 'connect');
      const payload = `held ${i}`;
      socket.write(payload);
      let got = '';
      const closed = once(socket, 'close').then(() => {
        throw new Error(`connection ${i} closed before its reply`);
      });
      closed.catch(() => {});
      while (got.length < payload.length) got += ((await Promise.race([once(socket, 'data'), closed])) as [Buffer])[0].toString();
      assert.equal(got, payload.toUpperCase());
      socket.setTimeout(0);
    }
  } catch (err) {
    for (const s of sockets) s.destroy();
    throw err;
  }
  return sockets;
}

/** Every entry of /connections at `base`, page by page (`limit` per page). */
export async function allConnections(base: string, limit = 1000): Promise<ConnectionsPage> {
  const first = (await (await fetch(`${base}/connections?limit=${limit}`)).json()) as ConnectionsPage;
  const connections = [...first.connections];
  while (connections.length < first.total) {
    const next = (await (await fetch(`${base}/connections?limit=${limit}&offset=${connections.length}`)).json()) as ConnectionsPage;
    if (next.connections.length === 0) break;
    connections.push(...next.connections);
  }
  return { ...first, connections };
}

/** How many connections each client address has. */
export function countByAddress(page: ConnectionsPage): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of page.connections) out[c.client.address ?? '?'] = (out[c.client.address ?? '?'] ?? 0) + 1;
  return out;
}

/** Every metric name upcase exports: one server process (as a worker) and a cluster primary. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const registry = createMetricsRegistry({
    stats: createStats(),
    processMetrics: false,
    worker: 1,
    info: () => ({
      version: '0',
      nodeVersion: '20',
      tcpTransport: 'stream',
      tcpCodec: 'js',
      udpTransport: 'dgram',
      tls: true,
      maxConnections: 1,
      idleTimeout: 1,
      writeTimeout: 1,
      udpRateLimit: 1,
      udpRateBurst: 1,
      certificate: { serialNumber: '01', notAfter: 1 },
      startTime: 1,
    }),
  });
  const text = `${await registry.metrics()}\n${await new ClusterPrimary({ workers: 2, processMetrics: false }).metrics()}`;
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

/** Prometheus text → { 'name{labels}': value }. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** GET `base`/metrics, parsed. */
export async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** The HTTP status of GET `base``path` (the body is read and dropped). */
export async function status(base: string, path: string): Promise<number> {
  const res = await fetch(`${base}${path}`);
  await res.arrayBuffer();
  return res.status;
}
