#!/usr/bin/env node
// What the operator's endpoints cost with many connections open: `listConnections` in-process, and
// GET /connections?limit=1000, GET / (status page) and GET /metrics over HTTP, for each TCP transport.
//
//   npm run build && node bench/connections.mjs [connections=1000]
//
// Connections are held on 127.0.0.1, each after one round trip. Figures are means; they depend on the
// machine's load, so compare them side by side within one run.
import { once } from 'node:events';
import net from 'node:net';
import { createMetricsRegistry, startMetricsServer, UpcaseServer } from '../dist/index.js';
import { loadNativeTcp } from '../dist/tcp/native.js';

const count = Number(process.argv[2] ?? 1000);
const transports = loadNativeTcp() === null ? ['stream'] : ['stream', 'native'];
for (const tcpTransport of transports) {
  const server = new UpcaseServer({
    host: '127.0.0.1',
    port: 0,
    udp: false,
    tcpTransport,
    maxConnections: count + 16,
    maxConnectionsPerSource: 0,
  });
  const { port } = await server.listen();
  const endpoint = await startMetricsServer({
    port: 0,
    source: createMetricsRegistry({ stats: () => server.stats, info: () => server.info() }),
    ready: () => true,
    connections: (q) => server.listConnections(q),
  });
  const base = `http://127.0.0.1:${endpoint.address().port}`;
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const s = net.connect({ host: '127.0.0.1', port });
    await once(s, 'connect');
    s.write('x');
    await once(s, 'data');
    sockets.push(s);
  }
  const http = async (path, n = 20) => {
    await (await fetch(base + path)).text();
    let bytes = 0;
    const t = performance.now();
    for (let i = 0; i < n; i++) bytes = (await (await fetch(base + path)).text()).length;
    return `${((performance.now() - t) / n).toFixed(1)} ms (${bytes} B)`;
  };
  const t = performance.now();
  for (let i = 0; i < 200; i++) server.listConnections({ offset: 0, limit: 1000 });
  const inProcess = `${((performance.now() - t) / 200).toFixed(2)} ms`;
  console.log(`${tcpTransport}: ${server.connectionCount} open`);
  console.log(`  listConnections(limit 1000), in-process: ${inProcess}`);
  console.log(`  GET /connections?limit=1000: ${await http('/connections?limit=1000')}`);
  console.log(`  GET / (status page):          ${await http('/')}`);
  console.log(`  GET /metrics:                 ${await http('/metrics')}`);
  for (const s of sockets) s.destroy();
  await Promise.all([server.close(), endpoint.close()]);
}
