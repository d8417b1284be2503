import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { pickFixedPort } from '../helpers/programs.js';
import { ROOT } from '../helpers/serve.js';
import { delay, within } from '../helpers/wait.js';

// Runs every ```console block of docs/tutorial.md and checks its output, so the
// tutorial stays true. In a block, `$ command` lines are run with `sh -c`
// (stdout and stderr together, as a terminal shows them) and the lines after
// each are its expected output. Placeholders: <port> and <n> (a whole number),
// <ms> (a decimal number), <...> (anything on the rest of the line).
//
// A command that starts a server (`upcase serve`, the textbook's *Server.py,
// examples/*-server.ts) runs in the background, as in a second terminal, until
// the next server starts; its lines are its first output, and a console block
// with no `$` line is what that server prints next. Servers get a free port
// (upcase: `--port 0`; the others: a port from pickFixedPort); the tutorial's
// 12000 in later commands becomes that port, the real port in any output reads
// as 12000, and `upcase client`/`upcase ping` without a port get `--port`.
// ```sh blocks are not run (tcpdump needs root, ss shows the whole machine).

const TUTORIAL = `${ROOT}docs/tutorial.md`;
const DOC_PORT = '12000';
const SERVER = /\bupcase(?:\.js)? serve\b|Server\.py\b|-server\.ts\b/;
const COMMAND_MS = 60_000;
const OUTPUT_MS = 30_000;

interface Step {
  /** The command as written, or null for a block of server output. */
  command: string | null;
  expected: string[];
  /** Line in the tutorial, for messages. */
  line: number;
}

/** The steps of every ```console block, in order. */
function parseTutorial(text: string): Step[] {
  const steps: Step[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```console') continue;
    let step: Step | null = null;
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) {
      const line = lines[i]!;
      if (line.startsWith('$ ')) {
        step = { command: line.slice(2), expected: [], line: i + 1 };
        steps.push(step);
      } else {
        if (step === null) {
          step = { command: null, expected: [], line: i + 1 };
          steps.push(step);
        }
        step.expected.push(line);
      }
    }
  }
  return steps;
}

/** An expected line as a regular expression, with its placeholders. */
function linePattern(expected: string): RegExp {
  const escaped = expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = escaped
    .replaceAll('<port>', '\\d+')
    .replaceAll('<n>', '\\d+')
    .replaceAll('<ms>', '\\d+(?:\\.\\d+)?')
    .replaceAll('<\\.\\.\\.>', '.*');
  return new RegExp(`^${pattern}$`);
}

/** Null when `actual` (lines) matches `expected`, else a message showing both. */
function mismatch(actual: string[], expected: string[]): string | null {
  const same = actual.length === expected.length && expected.every((line, i) => linePattern(line).test(actual[i]!));
  return same ? null : `expected:\n${expected.join('\n')}\n\nactual:\n${actual.join('\n')}`;
}

const outputLines = (text: string): string[] => {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
};

class Server {
  output = '';
  /** Output lines already checked against the tutorial. */
  checked = 0;
  readonly exited: Promise<void>;

  constructor(
    readonly child: ChildProcess,
    public port: string,
  ) {
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
  }

  lines(): string[] {
    return outputLines(this.output.replaceAll(new RegExp(`\\b${this.port}\\b`, 'g'), DOC_PORT));
  }

  /** Ctrl-C, as a student would: the shell and the server in it (its process group). */
  async stop(): Promise<void> {
    killGroup(this.child, 'SIGINT');
    await within(OUTPUT_MS, 'the server stops on SIGINT', this.exited).catch(() => killGroup(this.child, 'SIGKILL'));
    await this.exited;
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function shell(command: string): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
  for (const key of Object.keys(env)) if (key.startsWith('UPCASE_')) delete env[key];
  return spawn('sh', ['-c', `exec 2>&1; ${command}`], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
}

/** The command as the test runs it: the build instead of npx, and the current server's port. */
function localize(command: string, port: string | null): string {
  let c = command
    .replaceAll('node bin/upcase.js', `${process.execPath} bin/upcase.js`)
    .replaceAll('npx tsx', `${process.execPath} --import tsx`);
  if (port !== null) {
    c = c.replaceAll(new RegExp(`\\b${DOC_PORT}\\b`, 'g'), port);
    c = c.replace(/(bin\/upcase\.js (?:client|ping))(?![^|;&]*(?:\s-p\s|--port))/g, `$1 --port ${port}`);
  }
  return c;
}

let server: Server | null = null;
after(async () => {
  await server?.stop();
});

/** Polls (bounded) until the server's unchecked output is `expected`. */
async function expectServerOutput(step: Step): Promise<void> {
  assert.ok(server !== null, `tutorial line ${step.line}: server output, but no server was started`);
  const deadline = Date.now() + OUTPUT_MS;
  for (;;) {
    const fresh = server.lines().slice(server.checked, server.checked + step.expected.length);
    const problem = mismatch(fresh, step.expected);
    if (problem === null) {
      server.checked += step.expected.length;
      return;
    }
    if (Date.now() > deadline) assert.fail(`tutorial line ${step.line}: the server's output differs\n${problem}`);
    await delay(25);
  }
}

async function startServer(step: Step): Promise<void> {
  await server?.stop();
  const command = step.command!;
  let port: string;
  let localized: string;
  if (/\bupcase(?:\.js)? serve\b/.test(command)) {
    port = '0';
    localized = `${localize(command, null)} --port 0`;
  } else {
    port = String(await pickFixedPort(/TCP|tcp-/.test(command) ? 'tcp' : 'udp'));
    localized = localize(command, port);
  }
  server = new Server(shell(localized), port);
  if (port === '0') {
    const ready = /ready to receive on \S+ \S*:(\d+)/;
    const waiting = (async () => {
      while (!ready.test(server!.output) && server!.child.exitCode === null) await delay(25);
    })();
    await within(OUTPUT_MS, `tutorial line ${step.line}: ${command}: the ready line`, waiting).catch((err: unknown) =>
      assert.fail(`${(err as Error).message}\n${server!.output}`),
    );
    const match = ready.exec(server.output);
    assert.ok(match !== null, `tutorial line ${step.line}: ${command} exited:\n${server.output}`);
    server.port = match[1]!;
  }
  await expectServerOutput(step);
}

async function runCommand(step: Step): Promise<void> {
  const child = shell(localize(step.command!, server?.port ?? null));
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  try {
    await within(COMMAND_MS, `tutorial line ${step.line}: ${step.command}`, exited);
  } finally {
    // The whole process group: a command may leave something in the background (`nc … &`).
    killGroup(child, 'SIGKILL');
  }
  await within(COMMAND_MS, `tutorial line ${step.line}: the output of ${step.command}`, closed);
  const port = server?.port;
  const shown = port === undefined ? output : output.replaceAll(new RegExp(`\\b${port}\\b`, 'g'), DOC_PORT);
  const problem = mismatch(outputLines(shown), step.expected);
  if (problem !== null) assert.fail(`tutorial line ${step.line}: $ ${step.command}\n${problem}`);
}

const steps = parseTutorial(readFileSync(TUTORIAL, 'utf8'));

test('docs/tutorial.md has console blocks to run', () => {
  assert.ok(steps.length >= 20, `only ${steps.length} steps`);
});

// One test per server, in the tutorial's order (node:test runs them one after
// another): each runs the steps from its server's start to the next server's.
const groups: Step[][] = [];
for (const step of steps) {
  if (groups.length === 0 || (step.command !== null && SERVER.test(step.command))) groups.push([]);
  groups.at(-1)!.push(step);
}
for (const group of groups) {
  const first = group[0]!;
  test(`docs/tutorial.md line ${first.line}: ${first.command ?? 'output'} and the ${group.length - 1} steps after it`, async () => {
    for (const step of group) {
      if (step.command === null) await expectServerOutput(step);
      else if (SERVER.test(step.command)) await startServer(step);
      else await runCommand(step);
    }
  });
}
