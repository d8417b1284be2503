import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface OracleResult {
  /** Python's result. */
  output: Buffer;
  /** A character of the input is unassigned in Python's Unicode version (or maps to one), so Node's mapping was used for it. */
  versionOverride: boolean;
}

const ORACLE = fileURLToPath(new URL('../fixtures/oracle.py', import.meta.url));

/**
 * One long-lived `python3 test/fixtures/oracle.py` per test file: batches of
 * inputs go in length-prefixed, the surrogateescape-rule outputs come back the
 * same way. No process per case.
 */
export class PythonOracle {
  private readonly child: ChildProcessWithoutNullStreams;
  private received: Buffer[] = [];
  private receivedBytes = 0;
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private busy = false;

  constructor() {
    this.child = spawn('python3', [ORACLE], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    this.child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    this.child.stdout.on('data', (d: Buffer) => {
      this.received.push(d);
      this.receivedBytes += d.length;
      this.waiter?.();
    });
    this.child.on('exit', (code, signal) => {
      if (code !== 0 || signal !== null) this.failure = new Error(`oracle.py exited (${code ?? signal}): ${stderr}`);
      else this.failure = new Error('oracle.py exited');
      this.waiter?.();
    });
    this.child.on('error', (err) => {
      this.failure = err;
      this.waiter?.();
    });
    const table = Buffer.from(nodeUppercaseTable(), 'ascii');
    this.child.stdin.write(Buffer.concat([u32(table.length), table]));
  }

  /**
   * Python's `upper()` under surrogateescape for each input, in order, and
   * whether a Unicode-version override was needed for it.
   */
  async upcaseMany(inputs: readonly Uint8Array[]): Promise<OracleResult[]> {
    if (this.busy) throw new Error('one batch at a time');
    this.busy = true;
    try {
      const parts: Buffer[] = [u32(inputs.length)];
      for (const input of inputs) parts.push(u32(input.length), Buffer.from(input));
      this.child.stdin.write(Buffer.concat(parts));
      const outputs: OracleResult[] = [];
      let offset = 0;
      while (outputs.length < inputs.length) {
        const all = this.take();
        if (all.length - offset >= 5) {
          const len = all.readUInt32BE(offset + 1);
          if (all.length - offset - 5 >= len) {
            const output = Buffer.from(all.subarray(offset + 5, offset + 5 + len));
            outputs.push({ output, versionOverride: all[offset] === 1 });
            offset += 5 + len;
            continue;
          }
        }
        await this.more();
      }
      const all = this.take();
      this.received = all.length > offset ? [all.subarray(offset)] : [];
      this.receivedBytes = all.length - offset;
      return outputs;
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    await exited;
  }

  private take(): Buffer {
    if (this.received.length !== 1) this.received = [Buffer.concat(this.received, this.receivedBytes)];
    return this.received[0]!;
  }

  private more(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error('oracle.py did not answer within 30 s'));
      }, 30_000);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = null;
        if (this.failure !== null) reject(this.failure);
        else resolve();
      };
    });
  }
}

/**
 * Node's own per-code-point uppercase mapping (`cp:cp,cp` lines in hex) for every
 * code point toUpperCase changes. oracle.py uses it only where Python's Unicode
 * database is too old to know the character.
 */
export function nodeUppercaseTable(): string {
  const lines: string[] = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp === 0xd800) cp = 0xe000;
    const s = String.fromCodePoint(cp);
    const u = s.toUpperCase();
    if (u !== s) lines.push(`${cp.toString(16)}:${[...u].map((c) => c.codePointAt(0)!.toString(16)).join(',')}`);
  }
  return lines.join('\n');
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}
