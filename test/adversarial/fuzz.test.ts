/**
 * Fuzzer: fast-check inputs over raw sockets against the real server process.
 * At least 100,000 generated inputs across TCP and UDP: valid and invalid
 * UTF-8, random chunk sizes, random pauses on both sides, random resets. Every
 * completed output equals the codec oracle (the codec itself is checked against
 * Python elsewhere), every reset conversation got a prefix of it, and the
 * server is still up and serving at the end.
 *
 * TCP batches many inputs per connection: the whole byte stream of a
 * connection is the input whose uppercase must come back, however it was cut.
 * TCP runs alternate between two servers, one per TCP transport (native, stream).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import fc from 'fast-check';
import { upcase } from '../../src/codec/upcase.js';
import { probe } from '../helpers/roundtrip.js';
import { type ReadyServe, startServe } from '../helpers/serve.js';
import { delay } from '../helpers/wait.js';
import { input } from '../helpers/fuzz-inputs.js';

const MIN_TOTAL_INPUTS = 100_000;
const TCP_RUNS = 14;
const UDP_RUNS = 12;
let tcpInputs = 0;
let tcpConversations = 0;
let tcpResets = 0;
let udpInputs = 0;
let server: ReadyServe;
/** The same server with `--tcp-transport stream`: every other TCP run goes there. */
let streamServer: ReadyServe;
let tcpRun = 0;

before(async () => {
  // The rate limit and the connection cap have tests of their own; here they would only throttle.
  const flags = ['--udp-rate-limit', '0', '--max-connections', '5000', '--idle-timeout', '60'];
  [server, streamServer] = await Promise.all([startServe(flags), startServe([...flags, '--no-udp', '--tcp-transport', 'stream'])]);
});
after(async () => {
  await Promise.all([server?.close(), streamServer?.close()]);
});

const conversation = fc.record({
  // At least 120 inputs each, so the runs below always reach the total: 14 × 40 × 120 + 12 × 3000 > 100,000.
  inputs: fc.array(input, { minLength: 120, maxLength: 240 }),
  chunkSizes: fc.array(fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 3000 })), {
    minLength: 1,
    maxLength: 16,
  }),
  // 0: write on at once, 1: yield to the event loop, 2: sleep 1 ms, 3: stop reading replies for a while.
  pauses: fc.array(fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 1, 2, 3), { minLength: 1, maxLength: 16 }),
  // Where to reset, as a fraction of the stream; null: end normally and read everything.
  resetAt: fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }) }),
});
type Conversation = typeof conversation extends fc.Arbitrary<infer T> ? T : never;

function waitWritable(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Runs one conversation; resolves with an error message, or null when the output was right. */
async function converse(port: number, conv: Conversation): Promise<string | null> {
  const stream = Buffer.concat(conv.inputs);
  const resetAt = conv.resetAt === null ? -1 : Math.floor(conv.resetAt * stream.length);
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  const received: Buffer[] = [];
  let peerEnded = false;
  let error: Error | null = null;
  socket.on('data', (c: Buffer) => received.push(c));
  socket.on('end', () => {
    peerEnded = true;
  });
  socket.on('error', (err) => {
    error = err;
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const guard = setTimeout(() => socket.destroy(new Error('conversation timed out')), 30_000);
  try {
    await new Promise<void>((resolve) => {
      socket.once('connect', resolve);
      socket.once('close', resolve);
    });
    let offset = 0;
    let sent = 0;
    for (let i = 0; ; i++) {
      if (socket.destroyed) break;
      const size = conv.chunkSizes[i % conv.chunkSizes.length]!;
      let end = Math.min(stream.length, offset + size);
      const resetting = resetAt >= 0 && end >= resetAt;
      if (resetting) end = resetAt;
      if (end > offset && !socket.write(stream.subarray(offset, end))) await waitWritable(socket);
      sent = offset = end;
      if (resetting) {
        if (conv.pauses[i % conv.pauses.length] !== 0) await delay(1); // sometimes let the server see it first
        socket.resetAndDestroy();
        break;
      }
      if (offset >= stream.length) {
        socket.end();
        break;
      }
      switch (conv.pauses[i % conv.pauses.length]) {
        case 1:
          await immediate();
          break;
        case 2:
          await delay(1);
          break;
        case 3:
          socket.pause();
          setTimeout(() => socket.resume(), 5);
          break;
      }
    }
    await closed;
    const got = Buffer.concat(received);
    if (resetAt >= 0) {
      const oracle = upcase(stream.subarray(0, sent));
      if (got.length > oracle.length || !oracle.subarray(0, got.length).equals(got)) {
        return `reset conversation: output is not a prefix of the oracle\n input ${stream.subarray(0, sent).toString('hex')}\n got   ${got.toString('hex')}`;
      }
      return null;
    }
    if (error !== null) return `conversation failed: ${(error as Error).message}`;
    if (!peerEnded) return 'server did not end the conversation';
    const oracle = upcase(stream);
    if (!got.equals(oracle)) {
      return `output differs from the oracle\n input  ${stream.toString('hex')}\n want   ${oracle.toString('hex')}\n got    ${got.toString('hex')}`;
    }
    return null;
  } finally {
    clearTimeout(guard);
    socket.destroy();
  }
}

/** Sends every payload in windows over a few sockets; retries losses; resolves with mismatches. */
async function udpRound(port: number, payloads: Buffer[]): Promise<string[]> {
  const SOCKETS = 4;
  const WINDOW = 48;
  const sockets = await Promise.all(
    Array.from({ length: SOCKETS }, async () => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
      return s;
    }),
  );
  // A decimal tag in front is ASCII, so upcase(tag + payload) = tag + upcase(payload).
  const requests = payloads.map((p, i) => Buffer.concat([Buffer.from(`${i}:`), p]));
  const replies = new Map<number, Buffer>();
  const problems: string[] = [];
  for (const s of sockets) {
    s.on('message', (msg: Buffer) => {
      const colon = msg.indexOf(0x3a);
      const id = Number(msg.subarray(0, colon).toString('latin1'));
      if (!Number.isInteger(id) || id < 0 || id >= requests.length) {
        problems.push(`reply with an unknown tag: ${msg.subarray(0, 40).toString('hex')}`);
        return;
      }
      replies.set(id, msg);
    });
  }
  try {
    for (let start = 0; start < requests.length; start += WINDOW) {
      const ids = Array.from({ length: Math.min(WINDOW, requests.length - start) }, (_, k) => start + k);
      for (let attempt = 0; attempt < 6; attempt++) {
        const missing = ids.filter((id) => !replies.has(id));
        if (missing.length === 0) break;
        for (const id of missing) sockets[id % SOCKETS]!.send(requests[id]!, port, '127.0.0.1');
        const end = Date.now() + 300 * (attempt + 1);
        while (Date.now() < end && ids.some((id) => !replies.has(id))) await delay(1);
      }
      for (const id of ids) {
        const reply = replies.get(id);
        const oracle = upcase(requests[id]!);
        if (reply === undefined) problems.push(`no reply after 6 tries to ${requests[id]!.toString('hex')}`);
        else if (!reply.equals(oracle))
          problems.push(
            `udp reply differs\n input ${requests[id]!.toString('hex')}\n want  ${oracle.toString('hex')}\n got   ${reply.toString('hex')}`,
          );
      }
      if (problems.length > 0) break;
    }
  } finally {
    for (const s of sockets) s.close();
  }
  return problems;
}

describe('fuzzer: generated hostile input over real sockets', () => {
  test('TCP: any bytes, any chunking and timing, resets anywhere; output equals the oracle', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(conversation, { minLength: 40, maxLength: 48 }), async (batch) => {
        const { port } = tcpRun++ % 2 === 0 ? server : streamServer;
        const problems = (await Promise.all(batch.map((conv) => converse(port, conv)))).filter((p) => p !== null);
        assert.deepEqual(problems, []);
        tcpInputs += batch.reduce((sum, conv) => sum + conv.inputs.length, 0);
        tcpConversations += batch.length;
        tcpResets += batch.filter((conv) => conv.resetAt !== null).length;
      }),
      { numRuns: TCP_RUNS, endOnFailure: true },
    );
    assert.ok(server.alive() && streamServer.alive(), 'server process exited');
  });

  test('UDP: any bytes in windows of datagrams; each reply equals the oracle', async () => {
    const datagram = fc.oneof(
      { weight: 18, arbitrary: input },
      { weight: 1, arbitrary: fc.array(input, { minLength: 50, maxLength: 400 }).map((inputs) => Buffer.concat(inputs)) },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: 0, max: 4000 })
          .chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))
          .map((a) => Buffer.from(a)),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(datagram, { minLength: 3000, maxLength: 3000 }), async (payloads) => {
        assert.deepEqual((await udpRound(server.port, payloads)).slice(0, 3), []);
        udpInputs += payloads.length;
      }),
      { numRuns: UDP_RUNS, endOnFailure: true },
    );
    assert.ok(server.alive(), 'server process exited');
  });

  test(`at least ${MIN_TOTAL_INPUTS} inputs in total, and the server still serves`, async (t) => {
    t.diagnostic(`${tcpInputs} TCP inputs (${tcpConversations} connections, ${tcpResets} reset) + ${udpInputs} UDP datagrams`);
    assert.ok(tcpInputs + udpInputs >= MIN_TOTAL_INPUTS, `only ${tcpInputs} TCP + ${udpInputs} UDP inputs`);
    assert.ok(server.alive() && streamServer.alive(), 'server process exited');
    await probe(server.port);
    const transports = [server, streamServer].map((p) => p.logs().find((l) => l.msg === 'listening')?.tcpTransport);
    assert.deepEqual(transports, ['native', 'stream']);
    const bad = [...server.logs(), ...streamServer.logs()].filter((l) => (l.level as number) >= 50);
    assert.deepEqual(bad, []);
  });
});
