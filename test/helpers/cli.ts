import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { within } from './net.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI as users run it: bin/upcase.js over the built dist/ (npm test builds first). */
export const BIN = fileURLToPath(new URL('../../bin/upcase.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Environment without any UPCASE_* from the caller's shell, plus `env`. */
function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('UPCASE_')));
  return { ...base, ...env };
}

/** Runs `node bin/upcase.js ...args` to completion (bounded). */
export async function runCli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const [code, signal] = await within(options.timeoutMs ?? 30_000, `upcase ${args.join(' ')}`, exited(child));
    return { code, signal, stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

function exited(child: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => child.once('close', (code, signal) => resolve([code, signal])));
}

/** A running `upcase serve`, once it has printed its ready line. */
export class ServeProcess {
  stdout = '';
  stderr = '';
  readonly exit: Promise<[number | null, NodeJS.Signals | null]>;

  private constructor(
    readonly child: ChildProcess,
    readonly readyLine: string,
    readonly port: number,
  ) {
    this.exit = exited(child);
  }

  static async start(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const ready = await within(
      30_000,
      'the ready line',
      new Promise<string>((resolve, reject) => {
        const check = (): void => {
          const line = out.split('\n').find((l) => l.startsWith('The server is ready to receive'));
          if (line !== undefined && out.includes(`${line}\n`)) resolve(line);
        };
        child.stdout!.on('data', check);
        child.once('close', (code) => reject(new Error(`serve exited (${code}) before ready: ${err}`)));
      }),
    ).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
    const port = Number(/:(\d+)$/.exec(ready)?.[1]);
    const proc = new ServeProcess(child, ready, port);
    child.stdout!.on('data', (d: Buffer) => (proc.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (proc.stderr += d.toString()));
    proc.stdout = out;
    proc.stderr = err;
    return proc;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends `signal` and waits (bounded) for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 15_000): Promise<[number | null, NodeJS.Signals | null]> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return within(ms, `serve exits on ${signal}`, this.exit);
  }

  /** For t.after: make sure nothing outlives the test. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
