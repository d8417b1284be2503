/**
 * The one way tests run a command to completion: the upcase CLI ({@link runCli}) or any
 * other program ({@link run}). `upcase serve` as a long-running process is serve.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { BIN, cleanEnv, ROOT } from './serve.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout as UTF-8 text; {@link stdoutBytes} for the bytes. */
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

export interface RunOptions {
  /** The environment (default: the caller's). */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, then stdin is closed. Default: stdin closed at once. */
  input?: Buffer | string;
  /** Kill the process and fail after this many ms. Default 30000. */
  timeoutMs?: number;
  /** Called with the child as soon as it is spawned (to signal it, say). */
  onSpawn?: (child: ChildProcess) => void;
  /** Default: the repository's root. */
  cwd?: string;
}

/** Runs a command to completion, bounded in time. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  options.onSpawn?.(child);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  child.stdin.on('error', () => {}); // the child may exit before reading all of it
  child.stdin.end(options.input ?? '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs} ms; stderr: ${Buffer.concat(stderr)}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(stdout);
      resolve({ code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(stderr).toString() });
    });
  });
}

/** Runs `node bin/upcase.js ...args` (the build: `npm test` builds first) without the caller's UPCASE_* options ({@link cleanEnv}), plus `env`. */
export function runCli(
  args: string[],
  options: Omit<RunOptions, 'env' | 'cwd'> & { env?: Record<string, string> } = {},
): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], { ...options, env: cleanEnv(options.env) });
}
