// Helpers for tests that run `upcase serve` as a real process (not a test file: no `.test.ts`).
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/upcase.js', import.meta.url));

export interface ServeProcess {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the exit status. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for a stdout line matching `re` (bounded). */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for a JSON log line (stderr) for which `match` is true (bounded). */
  log(match: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Spawns `node bin/upcase.js serve ...args` with piped output. `command` replaces `node` (e.g. unshare). */
export function spawnServe(args: string[], options: { env?: Record<string, string>; prefix?: string[] } = {}): ServeProcess {
  const prefix = options.prefix ?? [];
  const argv = [...prefix, process.execPath, BIN, 'serve', ...args];
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const collect = (stream: NodeJS.ReadableStream, into: string[]): void => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      into.push(...parts);
      for (const wake of waiters) wake();
    });
    stream.on('end', () => {
      if (partial !== '') into.push(partial);
      for (const wake of waiters) wake();
    });
  };
  collect(child.stdout!, stdout);
  collect(child.stderr!, stderr);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      done = true;
      for (const wake of waiters) wake();
      resolve({ code, signal });
    });
  });
  const waitFor = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = find();
        if (found !== undefined) {
          cleanup();
          resolve(found);
        } else if (done) {
          cleanup();
          reject(new Error(`process exited before ${what}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    stdout,
    stderr,
    exited,
    line: (re, timeoutMs = 15_000) =>
      waitFor(
        () => {
          for (const l of stdout) {
            const m = l.match(re);
            if (m) return m;
          }
          return undefined;
        },
        `stdout ${re}`,
        timeoutMs,
      ),
    log: (match, timeoutMs = 15_000) => waitFor(() => parseLogs(stderr).find(match), 'a log line', timeoutMs),
  };
}

/** The exit status, or a failure (and SIGKILL) if the process is still running after `ms`. */
export async function exitWithin(p: ServeProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.child.kill('SIGKILL');
      reject(new Error(`process still running after ${ms} ms\nstdout:\n${p.stdout.join('\n')}\nstderr:\n${p.stderr.join('\n')}`));
    }, ms);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every stderr line as JSON; throws on a line that is not JSON. */
export function parseLogs(lines: string[]): Array<Record<string, unknown>> {
  return lines
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`log line is not JSON: ${l}`);
      }
    });
}

/** Starts a server with metrics and returns the ports from its stdout lines. */
export async function started(p: ServeProcess): Promise<{ port: number; host: string; transports: string; metrics?: string }> {
  const ready = await p.line(/^The server is ready to receive on (\S+) (?:\[(.+)\]|(.+)):(\d+)$/);
  const metrics = p.stdout.map((l) => l.match(/^Metrics on (http:\/\/\S+)/)).find((m) => m !== null)?.[1];
  return { transports: ready[1], host: ready[2] ?? ready[3], port: Number(ready[4]), metrics };
}

/** One TCP conversation: sends `payload`, half-closes, resolves with everything received. */
export function tcpRoundTrip(port: number, payload: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('tcp round trip timed out')));
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks));
    });
  });
}

/** One UDP request and its reply (bounded wait, a few retries: UDP may drop). */
export async function udpRoundTrip(port: number, payload: string, attempts = 5): Promise<string> {
  const socket = dgram.createSocket('udp4');
  try {
    for (let i = 0; i < attempts; i++) {
      socket.send(payload, port, '127.0.0.1');
      const reply = await Promise.race([
        once(socket, 'message').then(([msg]) => (msg as Buffer).toString()),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1000).unref()),
      ]);
      if (reply !== undefined) return reply;
    }
    throw new Error('no UDP reply');
  } finally {
    socket.close();
  }
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

export async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

export async function status(base: string, path: string): Promise<number> {
  const res = await fetch(`${base}${path}`);
  await res.arrayBuffer();
  return res.status;
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]);
      }
    }),
  );
  return results;
}

/** Polls `fn` until it returns true (bounded). */
export async function until(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
