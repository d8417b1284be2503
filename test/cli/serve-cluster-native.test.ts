// `--workers 2` with each UDP transport: `auto` keeps node:dgram (node:cluster shares one socket),
// `native` gives every worker its own SO_REUSEPORT socket. Either way every datagram is answered
// once, and /metrics sums both workers.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, describe, it } from 'node:test';
import { scrape } from '../helpers/operator.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { type ServeProcess, spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

/** `count` requests, each from its own socket (its own flow), each retried until answered. */
async function manyFlows(port: number, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const socket = dgram.createSocket('udp4');
      try {
        for (let attempt = 0; attempt < 5; attempt++) {
          const reply = new Promise<string | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 1000);
            socket.once('message', (msg: Buffer) => {
              clearTimeout(timer);
              resolve(msg.toString());
            });
          });
          socket.send(`flow ${i} ß`, port, '127.0.0.1');
          const got = await reply;
          if (got !== undefined) return got;
        }
        throw new Error(`flow ${i}: no reply`);
      } finally {
        socket.close();
      }
    }),
  );
}

for (const transport of ['auto', 'native'] as const) {
  describe(`serve --workers 2 --udp-transport ${transport}`, () => {
    let p: ServeProcess;
    after(async () => {
      p?.kill();
      await p?.exited;
    });

    it('answers every flow, and the workers run the expected transport', async () => {
      p = spawnServe(['--workers', '2', '--metrics-port', '0', '--udp-transport', transport, '--udp-rate-limit', '0']);
      const { port, metrics } = await p.ready();
      const replies = await manyFlows(port, 40);
      assert.deepEqual(
        replies,
        Array.from({ length: 40 }, (_, i) => `FLOW ${i} SS`),
      );
      // Each worker logs its own line, asynchronously: the ready line can come first.
      const listeningLines = () => p.logs().filter((e) => e.msg === 'listening');
      await until(() => listeningLines().length >= 2, 'both workers to log listening');
      const listening = listeningLines();
      assert.equal(listening.length, 2);
      for (const line of listening) assert.equal(line.udpTransport, transport === 'auto' ? 'dgram' : 'native');
      // TCP in workers: node:cluster hands each worker its connections, the addon serves them.
      for (const line of listening) assert.equal(line.tcpTransport, 'native');
      const tcpReplies = await Promise.all(Array.from({ length: 20 }, (_, i) => tcpRoundTrip(port, `conn ${i} ß`)));
      assert.deepEqual(
        tcpReplies.map(String),
        Array.from({ length: 20 }, (_, i) => `CONN ${i} SS`),
      );
      await until(async () => {
        const m = await scrape(metrics!);
        return m.get('upcase_datagrams_received_total') !== undefined && m.get('upcase_datagrams_sent_total')! >= 40;
      }, 'metrics to show the 40 replies');
      const m = await scrape(metrics!);
      assert.equal(m.get('upcase_datagrams_sent_total'), m.get('upcase_datagrams_received_total'));
    });
  });
}
