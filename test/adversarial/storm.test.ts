/**
 * A storm of 10,000 connections that reset mid-stream (at connect, mid
 * multi-byte character, after a reply, mid backpressure), at most 500 at a
 * time. The server process stays alive, keeps serving, and its open file
 * descriptors return to the baseline.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { probe } from '../helpers/roundtrip.js';
import { openFds, type ReadyServe, startServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

const TOTAL = 10_000;
const CONCURRENCY = 500;
let server: ReadyServe;

before(async () => {
  server = await startServe(['--max-connections', '2000']);
});
after(async () => {
  await server?.close();
});

const MID_CHAR = Buffer.concat([Buffer.from('straße ΐ '), Buffer.from('😀').subarray(0, 2)]); // ends inside a 4-byte character
const BIG = Buffer.from('ΐ'.repeat(96 * 1024)); // 192 KiB that grows to 576 KiB: the server backs up

/** One connection that resets; `kind` picks when. Resolves when it is closed, whatever happened. */
function resetting(port: number, kind: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const reset = (): void => {
      if (!socket.destroyed) socket.resetAndDestroy();
    };
    const guard = setTimeout(reset, 5000);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(guard);
      resolve();
    });
    socket.on('connect', () => {
      switch (kind) {
        case 0: // at once
          reset();
          break;
        case 1: // mid character, before any reply
          socket.write(MID_CHAR, reset);
          break;
        case 2: // after the first reply, with a character left half-sent
          socket.once('data', reset);
          socket.write(MID_CHAR);
          break;
        case 3: // while the server is backed up writing to us
          socket.pause();
          socket.write(BIG);
          setTimeout(reset, 5);
          break;
      }
    });
  });
}

test(`${TOTAL} connections reset mid-stream: the server survives and its fds return to baseline`, async (t) => {
  await probe(server.port);
  const baseline = openFds(server.pid);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < TOTAL) {
      const i = next++;
      // Mostly cheap kinds; every 10th backs the server up.
      await resetting(server.port, i % 10 === 9 ? 3 : i % 3);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.diagnostic(
    `${TOTAL} resets in ${((performance.now() - started) / 1000).toFixed(1)} s; fds at baseline ${baseline}, right after ${openFds(server.pid)}`,
  );
  assert.ok(server.alive(), 'server process died');
  await until(() => openFds(server.pid) <= baseline, `fds back to ${baseline} (now ${openFds(server.pid)})`, 20_000, 100);
  await probe(server.port);
  assert.ok(server.alive());
  const bad = server.logs().filter((l) => (l.level as number) >= 50);
  assert.deepEqual(bad, []);
});
