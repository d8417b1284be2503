#!/usr/bin/env node
// Memory a TCP transport holds per peer that sends and never reads (docs/protocol.md,
// "Backpressure"): starts `upcase serve` on each TCP transport in turn (interleaved, two
// rounds), lets N peers each write 64 KiB chunks without reading until their writes stall,
// and prints the server's RSS growth per peer and what each peer's kernel accepted.
//
//   npm run build && node bench/non-reader-memory.mjs [peers=64]
//
// Everything listens on 127.0.0.1 with a free port; every wait is bounded.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/upcase.js', import.meta.url));
const PEERS = Number(process.argv[2] ?? 64);
const MiB = 2 ** 20;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const rss = (pid) => Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;

/** A peer that writes until its writes stop draining for 1.5 s (or 15 s pass). */
async function nonReader(port) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.pause();
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let sent = 0;
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    while (socket.write(chunk)) sent += chunk.length;
    sent += chunk.length;
    const drained = await Promise.race([once(socket, 'drain').then(() => true), sleep(1500).then(() => false)]);
    if (!drained) break;
  }
  return { socket, sent };
}

async function measure(transport) {
  const args = [
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--no-udp',
    '--tcp-transport',
    transport,
    '--write-timeout',
    '0',
    '--idle-timeout',
    '0',
  ];
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  let port;
  for (let i = 0; i < 200 && port === undefined; i++) {
    await sleep(50);
    const match = /"port":(\d+)/.exec(log);
    if (match) port = Number(match[1]);
  }
  if (port === undefined) throw new Error(`upcase serve did not start: ${log}`);
  try {
    await sleep(1000); // settle after start-up
    const base = rss(child.pid);
    const peers = await Promise.all(Array.from({ length: PEERS }, () => nonReader(port)));
    await sleep(500);
    const held = rss(child.pid) - base;
    const sent = peers.reduce((sum, p) => sum + p.sent, 0) / PEERS;
    for (const p of peers) p.socket.destroy();
    return { held, sent };
  } finally {
    child.kill();
    await once(child, 'exit');
  }
}

console.log(`${PEERS} peers that never read, per TCP transport (RSS growth of upcase serve):`);
for (let round = 1; round <= 2; round++) {
  for (const transport of ['stream', 'native']) {
    const { held, sent } = await measure(transport);
    console.log(
      `  round ${round}  ${transport.padEnd(6)}  RSS +${(held / MiB).toFixed(1)} MiB = ${(held / PEERS / 1024).toFixed(0)} KiB per peer;` +
        ` each peer's kernel took ${(sent / MiB).toFixed(2)} MiB`,
    );
  }
}
