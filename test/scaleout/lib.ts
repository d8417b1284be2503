/**
 * Helpers for the scale-out tests: upcase instances as child processes, free
 * loopback ports, external balancers (nginx, haproxy) and retrying clients.
 * Everything binds 127.0.0.0/8 only.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { upcase } from '../../src/codec/upcase.js';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'upcase.js');

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

export interface Instance {
  process: ChildProcess;
  port: number;
  /** The JSON log lines written to stderr so far. */
  logs(): LogLine[];
  stop(): Promise<void>;
}

/** Starts `upcase serve --host 127.0.0.1 --port 0 ...args` and waits for its ready line. */
export async function startInstance(args: string[], env: Record<string, string> = {}): Promise<Instance> {
  const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => stderr.push(d));
  const deadline = Date.now() + 15_000;
  let match: RegExpExecArray | null;
  while ((match = /ready to receive on \S+ 127\.0\.0\.1:(\d+)\n/.exec(stdout)) === null) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`upcase serve did not start: ${Buffer.concat(stderr).toString()}`);
    }
    await Promise.race([once(child.stdout!, 'data'), sleep(100)]);
  }
  const port = Number(match[1]);
  return {
    process: child,
    port,
    logs: () =>
      Buffer.concat(stderr)
        .toString()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine),
    stop: () => stopProcess(child, 'SIGTERM'),
  };
}

/** Sends `signal`, then SIGKILL if it has not exited within 5 s. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
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

/** Resolves once a TCP connection (from {@link CLIENT_ADDRESS}) to the port succeeds; rejects after `ms`. */
export async function waitForTcp(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: CLIENT_ADDRESS }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** The request text for request `i`: not ASCII-only, so the full Unicode path is exercised. */
export function requestText(i: number): Buffer {
  return Buffer.from(`request ${i}: straße ﬃ çà\n`);
}

/**
 * One request on its own TCP connection from {@link CLIENT_ADDRESS}: send,
 * half-close, read until the server closes. True only for the exact reply.
 */
export function tcpRequest(port: number, payload: Buffer, timeoutMs = 5000): Promise<boolean> {
  const expected = upcase(payload);
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: CLIENT_ADDRESS, noDelay: true });
    const got: Buffer[] = [];
    let failed = false;
    const timer = setTimeout(() => {
      failed = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => {
      failed = true;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(!failed && Buffer.concat(got).equals(expected));
    });
  });
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

/** A UDP client socket bound to {@link CLIENT_ADDRESS} that sends one request at a time. */
export class UdpClient {
  private readonly socket = dgram.createSocket('udp4');
  private pending: ((reply: Buffer | null) => void) | null = null;

  async open(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(0, CLIENT_ADDRESS, () => resolve());
    });
    this.socket.on('message', (msg) => {
      const done = this.pending;
      this.pending = null;
      done?.(msg);
    });
    // ICMP errors surface as socket errors on some paths; a timeout handles them.
    this.socket.on('error', () => undefined);
    return this;
  }

  /** True only for the exact reply within `timeoutMs` (a late reply to an earlier try is ignored by content). */
  request(port: number, payload: Buffer, timeoutMs = 1000): Promise<boolean> {
    const expected = upcase(payload);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = null;
        resolve(false);
      }, timeoutMs);
      this.pending = (reply) => {
        clearTimeout(timer);
        resolve(reply?.equals(expected) === true);
      };
      this.socket.send(payload, port, '127.0.0.1');
    });
  }

  close(): void {
    this.socket.close();
  }
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
