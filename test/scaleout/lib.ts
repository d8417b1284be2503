/**
 * Helpers for the scale-out tests: upcase instances as child processes, free
 * loopback ports, external balancers (nginx, haproxy) and retrying clients.
 * Everything binds 127.0.0.0/8 only.
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { upcase } from '../../src/codec/upcase.js';
import { tcpRoundTrip, UdpPeer } from '../helpers/roundtrip.js';

/** An address on loopback other than 127.0.0.1: the "real client", so it differs from the balancer's. */
export const CLIENT_ADDRESS = '127.0.0.2';

export interface LogLine {
  msg: string;
  level: number;
  remoteAddress?: string;
  remotePort?: number;
  proxyAddress?: string;
  reason?: string;
}

/** A port number free for both TCP and UDP on 127.0.0.1 right now (for a balancer to bind). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as net.AddressInfo;
    const udp = dgram.createSocket('udp4');
    const udpOk = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    udp.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (udpOk) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

/** The first of `names` found as an executable in PATH or the sbin directories, or null. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}

/** Runs a command to completion (for `nginx -t`, `haproxy -c`); returns its output. */
export function run(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** The request text for request `i`: not ASCII-only, so the full Unicode path is exercised. */
export function requestText(i: number): Buffer {
  return Buffer.from(`request ${i}: straße ﬃ çà\n`);
}

/** One request on its own TCP connection from {@link CLIENT_ADDRESS}; true only for the exact reply. */
export function tcpRequest(port: number, payload: Buffer, timeoutMs = 5000): Promise<boolean> {
  return tcpRoundTrip(port, payload, { localAddress: CLIENT_ADDRESS, noDelay: true, timeoutMs }).then(
    (reply) => reply.equals(upcase(payload)),
    () => false,
  );
}

/**
 * Several requests on one TCP connection from {@link CLIENT_ADDRESS}, one at a
 * time: send a request, read its whole reply, send the next; then half-close
 * and wait for the server to close. True only if every reply was exact.
 */
export function tcpSession(port: number, payloads: Buffer[], timeoutMs = 5000): Promise<boolean> {
  const expected = payloads.map((p) => upcase(p));
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: CLIENT_ADDRESS, noDelay: true });
    let index = 0;
    let got = Buffer.alloc(0);
    let failed = false;
    const timer = setTimeout(() => {
      failed = true;
      socket.destroy();
    }, timeoutMs);
    const fail = (): void => {
      failed = true;
      socket.destroy();
    };
    socket.on('connect', () => socket.write(payloads[0]!));
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const want = expected[index];
      if (want === undefined) return fail(); // bytes after the last reply
      if (got.length < want.length) return;
      if (got.length > want.length || !got.equals(want)) return fail();
      got = Buffer.alloc(0);
      index++;
      if (index < payloads.length) socket.write(payloads[index]!);
      else socket.end();
    });
    socket.on('error', () => {
      failed = true;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(!failed && index === payloads.length);
    });
  });
}

/** A UDP socket bound to {@link CLIENT_ADDRESS}, for {@link udpRequest}. */
export function udpClient(): Promise<UdpPeer> {
  return UdpPeer.open('udp4', CLIENT_ADDRESS);
}

/** One UDP request; true only for the exact reply within `timeoutMs`. */
export async function udpRequest(client: UdpPeer, port: number, payload: Buffer, timeoutMs = 1000): Promise<boolean> {
  return (await client.request(port, payload, timeoutMs))?.equals(upcase(payload)) === true;
}

export interface LoadResult {
  /** Requests that failed on every attempt. */
  failed: number[];
  /** Requests whose first attempt failed (each later retried). */
  firstAttemptFailures: Array<{ id: number; startedAt: number }>;
  attempts: number;
}

/**
 * Runs `count` requests with `concurrency` workers; each request is tried up
 * to `maxAttempts` times. `onProgress(done)` is called after each request.
 */
export async function runLoad(options: {
  count: number;
  concurrency: number;
  maxAttempts: number;
  attempt: (worker: number, id: number) => Promise<boolean>;
  onProgress?: (done: number) => void;
  /** Awaited before request `id` starts: a way to hold the load at a point. */
  before?: (id: number) => Promise<void> | void;
  deadline: number;
}): Promise<LoadResult> {
  const result: LoadResult = { failed: [], firstAttemptFailures: [], attempts: 0 };
  let next = 0;
  let done = 0;
  const worker = async (w: number): Promise<void> => {
    while (next < options.count) {
      if (Date.now() > options.deadline) throw new Error(`load did not finish in time: ${done} of ${options.count} done`);
      const id = next++;
      await options.before?.(id);
      let ok = false;
      for (let attempt = 1; attempt <= options.maxAttempts && !ok; attempt++) {
        const startedAt = performance.now();
        result.attempts++;
        ok = await options.attempt(w, id);
        if (!ok && attempt === 1) result.firstAttemptFailures.push({ id, startedAt });
        if (!ok) await sleep(20 * attempt);
      }
      if (!ok) result.failed.push(id);
      done++;
      options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, w) => worker(w)));
  return result;
}
