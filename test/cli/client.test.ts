import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { deadUdpPort, fakeUdpServer, pickFixedPort } from '../helpers/programs.js';
import { run, runCli } from '../helpers/cli.js';
import { BIN, ROOT } from '../helpers/serve.js';
import { suiteServer } from '../helpers/serve.js';

const PTY_RUN = `${ROOT}test/fixtures/pty-run.py`;
const PROMPT = 'Input lowercase sentence: ';

/** `upcase client ARGS` on a pseudo-terminal, typing `lines` then Ctrl-D; the screen without cursor-control sequences. */
async function interactive(args: string[], lines: string[]): Promise<{ code: number | null; screen: string }> {
  const r = await run('python3', [PTY_RUN, PROMPT, lines.join('\n'), process.execPath, BIN, 'client', ...args]);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's escape sequences
  return { code: r.code, screen: r.stdout.toString().replace(/\x1b\[[0-9;]*[A-Za-z]/g, '') };
}

describe('upcase client', () => {
  const shared = suiteServer();

  test('MESSAGE arguments over TCP (the default): one reply line each, exit 0', async () => {
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(shared.port), 'hello', 'straße', 'ﬃ ǆ']);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.toString(), 'HELLO\nSTRASSE\nFFI Ǆ\n');
    assert.equal(r.code, 0);
  });

  test('MESSAGE arguments over UDP', async () => {
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(shared.port), 'hello', 'world']);
    assert.equal(r.stdout.toString(), 'HELLO\nWORLD\n');
    assert.equal(r.code, 0);
  });

  test('piped stdin over TCP streams byte for byte, invalid bytes included', async () => {
    const input = Buffer.concat([Buffer.from('line one\nstraße\n'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('\nno final newline')]);
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(shared.port)], { input });
    assert.deepEqual(r.stdoutBytes, upcase(input));
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  test('piped stdin over UDP: one datagram per line, replies in order', async () => {
    const input = `${Array.from({ length: 40 }, (_, i) => `line ${i} ß`).join('\n')}\n`;
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(shared.port)], { input });
    assert.equal(r.stdout.toString(), input.toUpperCase());
    assert.equal(r.code, 0);
  });

  test('UDP: a line too large for one datagram is a clear error, after the replies before it', async () => {
    const input = `ok\n${'x'.repeat(70_000)}\nnever\n`;
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(shared.port)], { input });
    assert.equal(r.stdout.toString(), 'OK\n');
    assert.equal(r.stderr, 'upcase: line 2 does not fit in one UDP datagram: it is longer than 65507 bytes\n');
    assert.equal(r.code, 1);
  });

  test('interactive TCP on a terminal: the textbook prompt, From server:, until Ctrl-D, with history', async () => {
    // "\x1b[A" is the up arrow: it recalls the previous line from the history.
    const { code, screen } = await interactive(['--host', '127.0.0.1', '--port', String(shared.port)], ['hello', 'straße', '\x1b[A']);
    assert.equal(code, 0, screen);
    assert.ok(screen.startsWith('Input lowercase sentence: hello\r\r\nFrom server: HELLO\r\nInput lowercase sentence: '), screen);
    const replies = screen.match(/From server: .*/g)?.map((l) => l.trimEnd());
    assert.deepEqual(replies, ['From server: HELLO', 'From server: STRASSE', 'From server: STRASSE']);
  });

  test('interactive UDP on a terminal', async () => {
    const { code, screen } = await interactive(['--udp', '--host', '127.0.0.1', '--port', String(shared.port)], ['hello over udp']);
    assert.equal(code, 0, screen);
    assert.equal(screen, 'Input lowercase sentence: hello over udp\r\r\nFrom server: HELLO OVER UDP\r\nInput lowercase sentence: \r\n');
  });
});

describe('upcase client errors', () => {
  test('TCP, nothing listening: exit 1 and one line naming host, port and transport', async () => {
    const port = await pickFixedPort('tcp');
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(port), 'hi']);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr, `upcase: cannot connect to 127.0.0.1:${port} (tcp): connection refused (nothing is listening there)\n`);
    assert.equal(r.code, 1);
  });

  test('UDP, no reply: exit 1 with "no reply … after 3 tries"', async (t) => {
    const silent = await fakeUdpServer();
    t.after(() => silent.close());
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(silent.port), '--timeout', '0.1', 'hi']);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr, `upcase: no reply from 127.0.0.1:${silent.port} (udp) after 3 tries\n`);
    assert.equal(r.code, 1);
    assert.equal(silent.received.length, 3);
  });

  test('UDP, --retries 0: one try', async (t) => {
    const silent = await fakeUdpServer();
    t.after(() => silent.close());
    const r = await runCli([
      'client',
      '--udp',
      '--host',
      '127.0.0.1',
      '--port',
      String(silent.port),
      '--timeout',
      '0.05',
      '--retries',
      '0',
      'hi',
    ]);
    assert.equal(r.stderr, `upcase: no reply from 127.0.0.1:${silent.port} (udp) after 1 try\n`);
    assert.equal(silent.received.length, 1);
  });

  test('UDP, nothing listening: refused at once (port unreachable)', async () => {
    const port = await deadUdpPort();
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(port), 'hi']);
    assert.equal(r.stderr, `upcase: cannot connect to 127.0.0.1:${port} (udp): connection refused (nothing is listening there)\n`);
    assert.equal(r.code, 1);
  });

  test('a late UDP reply is not printed as the reply to the next message', async (t) => {
    let firstTry: { port: number; address: string } | null = null;
    const fake = await fakeUdpServer((msg, rinfo, socket) => {
      const text = msg.toString();
      if (text === 'first' && firstTry === null) firstTry = rinfo;
      else if (text === 'first') socket.send('FIRST', rinfo.port, rinfo.address);
      else {
        socket.send('FIRST', firstTry!.port, firstTry!.address); // late: during the wait for "second"
        setTimeout(() => socket.send(text.toUpperCase(), rinfo.port, rinfo.address), 30);
      }
    });
    t.after(() => fake.close());
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(fake.port), '--timeout', '0.15', 'first', 'second']);
    assert.equal(r.stdout.toString(), 'FIRST\nSECOND\n');
    assert.equal(r.code, 0);
  });

  test('interactive: a failed line prints its error and the loop goes on; exit 1 at the end', async () => {
    const port = await pickFixedPort('tcp');
    const { code, screen } = await interactive(['--host', '127.0.0.1', '--port', String(port)], ['one', 'two']);
    const errors = screen.match(/upcase: cannot connect to 127\.0\.0\.1:\d+ \(tcp\): connection refused/g) ?? [];
    assert.equal(errors.length, 2, screen);
    assert.equal(screen.split(PROMPT).length - 1, 3, screen);
    assert.equal(code, 1);
  });

  test('usage errors exit 2', async () => {
    for (const args of [
      ['--tcp', '--udp', 'x'],
      ['--port', '0', 'x'],
      ['--port', '65536', 'x'],
      ['--timeout', '-5', 'x'],
      ['--retries', '1.5', 'x'],
      ['--bogus'],
    ]) {
      const r = await runCli(['client', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout.length, 0);
      // One line: the library's name the flag, commander's (an unknown flag) name it too.
      assert.match(r.stderr, /^upcase client: (--\w+: expected .*|unknown option '--bogus' .*)\n$/);
    }
  });
});

describe('upcase client, piped TCP, when the server closes first', () => {
  test('exits once the server closes, even though stdin is still open', async (t) => {
    // Like the textbook's TCPServer: one read, answer it, close.
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (chunk: Buffer) => socket.end(upcase(chunk)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as net.AddressInfo;
    const child = spawn(process.execPath, [BIN, 'client', '--host', '127.0.0.1', '--port', String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    child.stdin.on('error', () => {});
    child.stdin.write('hello'); // and never end it
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const [code] = (await once(child, 'close')) as [number | null];
    clearTimeout(timer);
    assert.equal(stdout, 'HELLO');
    assert.equal(stderr, 'upcase: warning: the server closed the connection before the end of the input (5 bytes sent)\n');
    // The server did not take the whole input: the exit status of a truncated reply.
    assert.equal(code, 3);
  });
});
