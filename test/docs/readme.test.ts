/**
 * The README's commands, run as written: the quick start's start command (it
 * answers, and SIGTERM to the process it starts frees the port), and every
 * ncat, nc and socat example against a server. Port 12000 in a command is
 * replaced by a free port; the start command gets it through UPCASE_PORT.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { ROOT, serverFor } from '../helpers/serve.js';
import { within } from '../helpers/wait.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The lines of the README's first `sh` block under `## Quick start`. */
function quickStartLines(): string[] {
  const section = README.slice(README.indexOf('## Quick start'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((line) => line.trim() !== '');
}

/** The start command: the quick start line that runs `serve`, without its comment. */
function startCommand(): string[] {
  const line = quickStartLines().find((l) => / serve\b/.test(l.split('#')[0]!));
  assert.ok(line !== undefined, 'the quick start has a serve command');
  return line.split('#')[0]!.trim().split(/\s+/);
}

function has(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Whether `port` can be bound again on 127.0.0.1, over TCP and over UDP. */
async function portIsFree(port: number): Promise<boolean> {
  const tcp = net.createServer();
  const tcpFree = await new Promise<boolean>((resolve) => {
    tcp.once('error', () => resolve(false));
    tcp.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (tcpFree) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  const udp = dgram.createSocket('udp4');
  const udpFree = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(port, '127.0.0.1', () => resolve(true));
  });
  udp.close();
  return tcpFree && udpFree;
}

/** Runs `command` with sh (bounded) and resolves with its stdout; rejects on a non-zero exit. */
function runShell(command: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command}: exit ${code}: ${err}`));
    });
  });
}

describe('the README', () => {
  test('the quick start command answers, and SIGTERM to the process it starts stops the server and frees the port', async () => {
    const [command, ...args] = startCommand();
    assert.deepEqual([command, ...args], ['node', 'bin/upcase.js', 'serve'], 'a command that stops with its own process');
    const env = { ...process.env, UPCASE_PORT: '0', UPCASE_HOST: '127.0.0.1', UPCASE_LOG_LEVEL: 'warn' };
    const child = spawn(command!, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
      const ready = await within(
        15_000,
        'the ready line',
        new Promise<string>((resolve, reject) => {
          child.stdout.on('data', () => {
            const line = /^The server is ready to receive on .*:(\d+)\n/m.exec(out);
            if (line !== null) resolve(line[1]!);
          });
          void exited.then(() => reject(new Error(`exited before ready: ${out}`)));
        }),
      );
      const port = Number(ready);
      assert.equal((await tcpRoundTrip(port, 'hello, straße')).toString(), 'HELLO, STRASSE');
      child.kill('SIGTERM');
      assert.deepEqual(await within(15_000, 'the server to exit on SIGTERM', exited), [0, null]);
      assert.ok(await portIsFree(port), `port ${port} is free again`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  // `printf 'text' | …` and `(printf 'text'; sleep 1) | …` commands, in blocks and in prose.
  const examples = [
    ...README.matchAll(/^\(?printf '([^']*)'.*\| *(ncat|nc|socat)\b.*$|`(\(?printf '([^']*)'[^`]*\| *(ncat|nc|socat)\b[^`]*)`/gm),
  ].map((m) => {
    const line = (m[3] ?? m[0]).split('#')[0]!.trim();
    const comment = m[3] === undefined ? (m[0].split('#')[1] ?? '') : '';
    return { line, text: m[1] ?? m[4]!, tool: (m[2] ?? m[5])!, comment };
  });

  test('the README has nc, ncat and socat examples to run', () => {
    assert.deepEqual([...new Set(examples.map((e) => e.tool))].sort(), ['nc', 'ncat', 'socat']);
  });

  for (const example of examples) {
    // A line for "either nc" runs with each nc here; OpenBSD's needs nc.openbsd (netcat-openbsd).
    const runners =
      example.tool !== 'nc'
        ? [example.tool]
        : /OpenBSD/.test(example.comment) && !/either/.test(example.comment)
          ? ['nc.openbsd']
          : ['ncat', 'nc.openbsd'];
    for (const runner of runners) {
      const skip = has(runner) ? false : `${runner} is not installed`;
      test(`${example.line}  (with ${runner})`, { skip }, async (t) => {
        const server = await serverFor(t);
        const command = example.line.replace(/\b12000\b/g, String(server.address().port)).replace(/\| *nc\b/, `| ${runner}`);
        // socat waits 0.5 s after the end of its input for the reply, and the UDP nc line 1 s: on a
        // machine so loaded that the reply takes longer, try once more before failing.
        let stdout = await runShell(command);
        if (stdout !== upcase(example.text).toString()) stdout = await runShell(command);
        assert.equal(stdout, upcase(example.text).toString());
      });
    }
  }
});
