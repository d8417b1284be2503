/**
 * The upcase CLI as a separate process, for tests that need its own RSS, fds or
 * CPU time, or need it to outlive a hostile client. Needs `npm run build` first.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = `${root}bin/upcase.js`;

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** Everything the server wrote to stderr so far (its log). */
  log(): string;
  /** Parsed JSON log lines so far. */
  logLines(): Array<Record<string, unknown>>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnOptions {
  /** Run under `prlimit --nofile=N:N`. */
  nofile?: number;
  /** Extra environment variables for the server. */
  env?: Record<string, string>;
  /** Milliseconds to wait for the ready line. Default 15000. */
  readyTimeoutMs?: number;
}

// Servers must not outlive a test process that exits or is killed (e.g. by the runner's timeout).
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

/** Starts `upcase serve --host 127.0.0.1 --port 0 ...args` and waits for its ready line. */
export async function spawnServer(args: string[] = [], options: SpawnOptions = {}): Promise<ServerProcess> {
  if (!existsSync(`${root}dist/cli/main.js`)) throw new Error('dist/ is missing: run `npm run build` first');
  const nodeArgs = [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', ...args];
  const [command, commandArgs] =
    options.nofile === undefined
      ? [process.execPath, nodeArgs]
      : ['prlimit', [`--nofile=${options.nofile}:${options.nofile}`, process.execPath, ...nodeArgs]];
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UPCASE_LOG_LEVEL: undefined, ...options.env },
  });
  reapOnExit(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
  });
  let exited = false;
  const exit = once(child, 'exit').then(([code, signal]) => {
    exited = true;
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  let stdout = '';
  child.stdout!.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in time; stderr:\n${stderr}`)), options.readyTimeoutMs ?? 15_000);
    child.stdout!.on('data', (d: string) => {
      stdout += d;
      const m = /ready to receive on \S+ \S+:(\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before ready; stderr:\n${stderr}`));
    });
  });
  return {
    child,
    pid: child.pid!,
    port,
    log: () => stderr,
    logLines: () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    alive: () => !exited,
    async stop(graceMs = 5000) {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const result = await exit;
        clearTimeout(timer);
        return result;
      }
      return exit;
    },
  };
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
