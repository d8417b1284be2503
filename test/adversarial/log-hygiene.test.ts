/**
 * Log lines never contain payload: the server runs at `--log-level trace`
 * through every logged path (connections, resets, idle and write timeouts,
 * refusals, UDP replies and drops) with a distinctive payload, and the log
 * holds none of it, in any encoding.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { floodWithoutReading, tcpRoundTrip, udpExchange } from '../helpers/roundtrip.js';
import { startServe } from '../helpers/serve.js';
import { delay } from '../helpers/wait.js';

const CANARY = 'zqxjcanary-payload-7f3k';

test('at trace level, no log line contains payload bytes', async () => {
  const server = await startServe([
    '--log-level',
    'trace',
    '--idle-timeout',
    '1',
    '--write-timeout',
    '1',
    '--max-connections',
    '3',
    '--udp-rate-limit',
    '5',
    '--drain-timeout',
    '0',
  ]);
  const port = server.port;
  try {
    // A normal conversation, with the canary split across writes and a bad byte.
    assert.equal((await tcpRoundTrip(port, `${CANARY} ${CANARY}`)).toString(), `${CANARY} ${CANARY}`.toUpperCase());

    // Reset mid-stream, mid character.
    const reset = net.connect({ port, host: '127.0.0.1' });
    reset.on('error', () => {});
    await once(reset, 'connect');
    reset.write(Buffer.concat([Buffer.from(CANARY), Buffer.from([0xf0, 0x9f])]));
    await delay(50);
    reset.resetAndDestroy();

    // Idle timeout after payload.
    const idle = net.connect({ port, host: '127.0.0.1' });
    idle.on('error', () => {});
    await once(idle, 'connect');
    idle.resume(); // consume the reply, so the server's FIN is seen
    idle.write(CANARY);
    await Promise.race([once(idle, 'close').catch(() => null), delay(10_000, null, { ref: false })]);
    assert.ok(idle.destroyed, 'the idle timeout did not close the connection');

    // Write timeout: payload that is never read.
    const stalled = net.connect({ port, host: '127.0.0.1' });
    stalled.on('error', () => {});
    await once(stalled, 'connect');
    await floodWithoutReading(stalled, { chunk: Buffer.from(CANARY.repeat(3000)), quietMs: 300 });
    await Promise.race([once(stalled, 'close').catch(() => null), delay(10_000, null, { ref: false })]);
    stalled.destroy();

    // Refusals past --max-connections, each sending payload.
    const crowd = Array.from({ length: 8 }, () => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('connect', () => s.write(CANARY));
      return s;
    });
    await delay(300);
    for (const s of crowd) s.destroy();

    // UDP: a reply, a rate-limited burst, an oversized reply.
    assert.equal((await udpExchange(port, CANARY))?.toString(), CANARY.toUpperCase());
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    for (let i = 0; i < 20; i++) udp.send(CANARY, port, '127.0.0.1');
    udp.send(Buffer.from(CANARY + 'ΐ'.repeat(30_000)), port, '127.0.0.1');
    await delay(300);
    udp.close();
  } finally {
    await server.close();
  }
  const log = server.stderr;
  const messages = new Set(server.logs().map((l) => l.msg));
  // The paths above were really logged...
  for (const expected of [
    'connection open',
    'connection error',
    'idle timeout; closing',
    'client left replies unread; closing',
    'connection refused: max connections reached',
    'udp request dropped',
  ]) {
    assert.ok(messages.has(expected), `no "${expected}" line; got ${[...messages].join(', ')}`);
  }
  // ...and none of them carries payload, in any form.
  for (const form of [
    CANARY,
    CANARY.toUpperCase(),
    Buffer.from(CANARY).toString('hex'),
    Buffer.from(CANARY).toString('base64').slice(0, 16),
    'canary',
    'CANARY',
  ]) {
    assert.ok(!log.includes(form), `the log contains ${JSON.stringify(form)}`);
  }
});
