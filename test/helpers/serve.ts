/**
 * The one way tests get a server: `upcase serve` as a child process (the CLI as
 * users run it, over the built dist/: `npm test` builds first), or the library's
 * server in this process ({@link serverFor}).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ServerOptions } from '../../src/options.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { within } from './wait.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI as users run it. */
export const BIN = `${ROOT}bin/upcase.js`;

/** Where tests listen: loopback, a port the kernel picks. */
export const LOOPBACK = ['--host', '127.0.0.1', '--port', '0'] as const;

/** Something that runs cleanups when a test (or suite) ends. */
export type Cleanup = Pick<TestContext, 'after'> | { after: (fn: () => unknown) => void };

/** A server on 127.0.0.1, a free port, in this process; closed when the test ends. */
export async function serverFor(t: Cleanup, options: ServerOptions = {}): Promise<UpcaseServer> {
  const server = await startServer({ host: '127.0.0.1', port: 0, ...options });
  t.after(() => server.close());
  return server;
}

/**
 * A server on 127.0.0.1, a free port, in this process, shared by the tests of a
 * suite: call it inside `describe`; it starts in `before` and closes in `after`.
 * Read `.server` and `.port` inside the tests.
 */
export function suiteServer(options: ServerOptions = {}): { readonly server: UpcaseServer; readonly port: number } {
  let started: UpcaseServer | undefined;
  before(async () => {
    started = await startServer({ host: '127.0.0.1', port: 0, ...options });
  });
  after(() => started?.close());
  return {
    get server(): UpcaseServer {
      if (started === undefined) throw new Error('suiteServer: the server starts in before(); read it inside a test');
      return started;
    },
    get port(): number {
      return this.server.address().port;
    },
  };
}

/**
 * Variables that say which build of upcase runs, not how it is configured: a run
 * such as `npm run test:sanitize` sets them for the servers its tests start.
 */
const BUILD_VARIABLES = new Set(['UPCASE_NATIVE', 'UPCASE_NATIVE_DIR', 'UPCASE_CODEC_PATH', 'UPCASE_UBSAN_LOG']);

/** The caller's environment without its UPCASE_* options (the build's variables stay), plus `env`. */
export function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPCASE_') || BUILD_VARIABLES.has(k)));
  return { ...base, ...env };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What the ready line (and the metrics line before it) say. */
export interface Ready {
  /** The ready line itself, without its newline. */
  readyLine: string;
  /** `tcp+udp`, `tcp` or `udp`; '' when only TLS listens. */
  transports: string;
  host: string;
  /** The plain TCP/UDP port; NaN when only TLS listens. */
  port: number;
  /** The TLS port, when TLS listens. */
  tlsPort?: number;
  /** The metrics server's base URL, with --metrics-port. */
  metrics?: string;
}

export interface ServeOptions {
  /** Variables on top of the caller's environment, whose UPCASE_* options are dropped ({@link cleanEnv}). */
  env?: Record<string, string>;
  /** A command to run node under, e.g. `['prlimit', '--nofile=64:64']` or `unshare`. */
  prefix?: string[];
  /** Put {@link LOOPBACK} before `args` (later flags win). Default true. */
  loopback?: boolean;
  /** Kill the process when this test ends (processes are killed when the test file's process exits anyway). */
  t?: Cleanup;
}

// Servers must not outlive the test process, even when the runner kills it on a timeout.
const live = new Set<ChildProcess>();
let reaperInstalled = false;
function reapOnExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (reaperInstalled) return;
  reaperInstalled = true;
  const killAll = (): void => {
    for (const c of live) c.kill('SIGKILL');
  };
  process.once('exit', killAll);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
}

const READY = /^The server is ready to receive on (.*)$/;
const METRICS = /^Metrics on (http:\/\/\S+)/;

/** `host:port` or `[v6]:port`. */
function hostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[(.+)\]|(.+)):(\d+)$/.exec(text);
  if (m === null) throw new Error(`not host:port: ${text}`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/** Parses `The server is ready to receive on tcp+udp 127.0.0.1:P, tls 127.0.0.1:T`. */
function parseReady(line: string): Omit<Ready, 'metrics'> {
  const m = READY.exec(line);
  if (m === null) throw new Error(`not a ready line: ${line}`);
  const ready: Omit<Ready, 'metrics'> = { readyLine: line, transports: '', host: '', port: Number.NaN };
  for (const part of m[1]!.split(', ')) {
    const [name, address] = part.split(' ') as [string, string];
    const { host, port } = hostPort(address);
    ready.host = host;
    if (name === 'tls') ready.tlsPort = port;
    else Object.assign(ready, { transports: name, port });
  }
  return ready;
}

/** A running `upcase serve`: its output as lines, its logs, signals and exit. */
export class ServeProcess {
  /** stdout and stderr, line by line (a partial last line is added when the stream ends). */
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  /** Resolves with the exit status once the output is read to its end. */
  readonly exited: Promise<Exit>;
  private done = false;
  private readyOnce: Promise<Ready> | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    this.collect(child.stdout!, this.stdoutLines);
    this.collect(child.stderr!, this.stderrLines);
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.done = true;
        this.wake();
        resolve({ code, signal });
      });
    });
  }

  /** stdout so far, as text (whole lines). */
  get stdout(): string {
    return this.stdoutLines.map((l) => `${l}\n`).join('');
  }

  /** stderr so far, as text (whole lines): the log, or the trace. */
  get stderr(): string {
    return this.stderrLines.map((l) => `${l}\n`).join('');
  }

  get pid(): number {
    return this.child.pid!;
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits (bounded) for the ready line; fails if the process exits first. */
  ready(ms = 30_000): Promise<Ready> {
    this.readyOnce ??= this.line(READY, ms).then((m) => {
      const metrics = this.stdoutLines.map((l) => METRICS.exec(l)).find((x) => x !== null)?.[1];
      return { ...parseReady(m[0]), ...(metrics === undefined ? {} : { metrics }) };
    });
    return this.readyOnce;
  }

  /** Waits for a stdout line matching `re`; fails if the process exits first or after `ms`. */
  line(re: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    return this.waitFor(() => this.stdoutLines.map((l) => l.match(re)).find((m) => m !== null) ?? undefined, `stdout ${re}`, ms);
  }

  /** Waits for a JSON log line (stderr) for which `match` is true. */
  log(match: (entry: Record<string, unknown>) => boolean, ms = 15_000): Promise<Record<string, unknown>> {
    return this.waitFor(() => this.logs().find(match), 'a log line', ms);
  }

  /** Every stderr line as JSON (the log when stderr is not a terminal); fails on one that is not JSON. */
  logs(): Array<Record<string, unknown>> {
    return this.stderrLines
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw new Error(`log line is not JSON: ${l}`);
        }
      });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive()) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; fails (and SIGKILLs) if it is still running after `ms`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<Exit> {
    this.signal(signal);
    return this.exitWithin(ms);
  }

  /** The exit status; fails (and SIGKILLs) if the process is still running after `ms`. */
  async exitWithin(ms: number): Promise<Exit> {
    try {
      return await within(ms, `the server to exit\n${this.output()}`, this.exited);
    } catch (err) {
      this.kill();
      throw err;
    }
  }

  /** For cleanup: SIGTERM, SIGKILL after `graceMs`, and the exit; never fails. */
  async close(graceMs = 5000): Promise<Exit> {
    await stopProcess(this.child, 'SIGTERM', graceMs);
    return this.exited;
  }

  kill(): void {
    this.signal('SIGKILL');
  }

  private output(): string {
    return `stdout:\n${this.stdout}stderr:\n${this.stderr}`;
  }

  private collect(stream: NodeJS.ReadableStream, into: string[]): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      into.push(...parts);
      this.wake();
    });
    stream.on('end', () => {
      if (partial !== '') into.push(partial);
      this.wake();
    });
  }

  private wake(): void {
    for (const wake of this.waiters) wake();
  }

  private waitFor<T>(find: () => T | undefined, what: string, ms: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = (): void => {
        const found = find();
        if (found !== undefined) {
          finish();
          resolve(found);
        } else if (this.done) {
          finish();
          reject(new Error(`the server exited before ${what}\n${this.output()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${this.output()}`));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }
}

/** Stops any child process (a balancer, say): sends `signal`, then SIGKILL if it has not exited within `graceMs`. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Spawns `node bin/upcase.js serve [--host 127.0.0.1 --port 0] ...args`; does not wait. */
export function spawnServe(args: readonly string[] = [], options: ServeOptions = {}): ServeProcess {
  if (!existsSync(`${ROOT}dist/cli/main.js`)) throw new Error('dist/ is missing: run `npm run build` first');
  const argv = [...(options.prefix ?? []), process.execPath, BIN, 'serve', ...(options.loopback === false ? [] : LOOPBACK), ...args];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  reapOnExit(child);
  const serve = new ServeProcess(child);
  options.t?.after(() => serve.close());
  return serve;
}

/** A server process past its ready line, with what that line said. */
export type ReadyServe = ServeProcess & Ready;

/** {@link spawnServe}, then waits for the ready line (killing the process if it does not come). */
export async function startServe(args: readonly string[] = [], options: ServeOptions & { readyMs?: number } = {}): Promise<ReadyServe> {
  const serve = spawnServe(args, options);
  try {
    return Object.assign(serve, await serve.ready(options.readyMs));
  } catch (err) {
    serve.kill();
    throw err;
  }
}

/** Resident set size of a process, in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Open file descriptors of a process. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 per second on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after it are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
}

/** USER_HZ: the unit of {@link cpuTicks}. */
export const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
