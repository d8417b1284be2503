import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { type ReadyServe, startServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

// `upcase serve --trace` and `upcase client --trace`: every step of the
// textbook's figures (§2.7: the UDP flow, the TCP flow, the welcoming and
// connection sockets), in order, with the real addresses and ports.

const T = String.raw`\[\d+\.\d{3} ms\] `;
const NOTICE = /^trace: each socket step, in the textbook's words, with up to 40 bytes of payload \(escaped\)/;

/** Asserts that `text` has lines matching `patterns`, in this order (other lines may come between). */
function assertInOrder(text: string, patterns: RegExp[]): RegExpExecArray[] {
  const lines = text.split('\n');
  const found: RegExpExecArray[] = [];
  let from = 0;
  for (const pattern of patterns) {
    const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
    assert.ok(index >= 0, `no line after line ${from} matches ${pattern}:\n${text}`);
    found.push(pattern.exec(lines[index]!)!);
    from = index + 1;
  }
  return found;
}

/** Waits (bounded) until the server's stderr has a line matching `pattern`. */
async function serverSaid(server: ReadyServe, pattern: RegExp, ms = 10_000): Promise<void> {
  await until(
    () => server.stderrLines.some((line) => pattern.test(line)),
    () => `the server to print ${pattern}:\n${server.stderr}`,
    ms,
  );
}

describe('upcase serve --trace with upcase client --trace', () => {
  let server: ReadyServe;
  before(async () => {
    server = await startServe(['--trace']);
  });
  after(() => server.kill());

  test('the server says it shows payload and which transports it runs, then the listening sockets', async () => {
    const p = server.port;
    await serverSaid(server, /udp: server socket bound/);
    const [notice] = assertInOrder(server.stderr, [
      NOTICE,
      new RegExp(`^${T}tcp: welcoming socket listening on 127\\.0\\.0\\.1:${p}; waiting in accept\\(\\)$`),
      new RegExp(`^${T}udp: server socket bound to 127\\.0\\.0\\.1:${p}; waiting in recvfrom\\(\\)$`),
    ]);
    assert.match(notice!.input, /TCP on the stream transport, UDP on node:dgram/);
    // The logs are kept to warnings, so the narration reads on its own.
    assert.doesNotMatch(server.stderr, /"level"/);
  });

  test('TCP: connect, handshake, send, FIN, recv, close; accept() makes connection socket #n', async () => {
    const p = server.port;
    const r = await runCli(['client', '--trace', '--host', '127.0.0.1', '--port', String(p), 'hello, straße']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'HELLO, STRASSE\n', 'the reply alone on stdout');
    const [, , connected] = assertInOrder(r.stderr, [
      NOTICE,
      new RegExp(`^${T}tcp: socket\\(\\); connect\\(\\) to 127\\.0\\.0\\.1:${p}: the kernel starts the three-way handshake \\(SYN\\)$`),
      new RegExp(
        `^${T}tcp: connected from 127\\.0\\.0\\.1:(\\d+) \\(a port the OS chose\\) to 127\\.0\\.0\\.1:${p}; the handshake took \\d+\\.\\d{3} ms$`,
      ),
      new RegExp(`^${T}tcp: send\\(\\) 14 bytes "hello, straße"$`),
      new RegExp(`^${T}tcp: shutdown\\(SHUT_WR\\): FIN sent, the message is complete$`),
      new RegExp(`^${T}tcp: recv\\(\\) got 14 bytes "HELLO, STRASSE"$`),
      new RegExp(`^${T}tcp: the server sent FIN: the reply is complete$`),
      new RegExp(`^${T}tcp: close\\(\\)$`),
    ]);
    const clientPort = Number(connected![1]);
    assert.ok(clientPort > 0 && clientPort !== p);

    await serverSaid(server, /closing connection socket #\d+ \(14 bytes in/);
    const [accept] = assertInOrder(server.stderr, [
      new RegExp(`^${T}tcp: accept\\(\\) created connection socket #(\\d+) for client 127\\.0\\.0\\.1:${clientPort}$`),
    ]);
    const n = accept![1];
    const after = server.stderr.slice(server.stderr.indexOf(accept![0]));
    assertInOrder(after, [
      new RegExp(`^${T}tcp #${n}: recv\\(\\) got 14 bytes "hello, straße"$`),
      new RegExp(`^${T}tcp #${n}: send\\(\\) 14 bytes "HELLO, STRASSE"$`),
      new RegExp(`^${T}tcp #${n}: the client sent FIN: no more bytes will come$`),
      new RegExp(`^${T}tcp #${n}: closing connection socket #${n} \\(14 bytes in, 14 out, open \\d+\\.\\d{3} ms\\)$`),
    ]);
  });

  test('UDP: socket, sendto, the server recvfrom and sendto with the client address, recvfrom, close', async () => {
    const p = server.port;
    const r = await runCli(['client', '--udp', '--trace', '--host', '127.0.0.1', '--port', String(p), 'ﬃ\t"x"']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'FFI\t"X"\n');
    const [, socket] = assertInOrder(r.stderr, [
      NOTICE,
      new RegExp(
        `^${T}udp: socket\\(\\) on 127\\.0\\.0\\.1:(\\d+) \\(a port the OS chose\\); no handshake: nothing is sent before sendto\\(\\)$`,
      ),
      // Payload is escaped as in JSON: the tab and the quotes.
      new RegExp(`^${T}udp: sendto\\(\\) 7 bytes "ﬃ\\\\t\\\\"x\\\\"" to 127\\.0\\.0\\.1:${p} \\(try 1 of 3\\)$`),
      new RegExp(
        `^${T}udp: recvfrom\\(\\) got 7 bytes "FFI\\\\t\\\\"X\\\\"" from 127\\.0\\.0\\.1:${p}, \\d+\\.\\d{3} ms after sendto\\(\\)$`,
      ),
      new RegExp(`^${T}udp: close\\(\\)$`),
    ]);
    const clientPort = socket![1];
    await serverSaid(server, new RegExp(`sendto\\(\\) .* to 127\\.0\\.0\\.1:${clientPort}$`));
    assertInOrder(server.stderr, [
      new RegExp(`^${T}udp: recvfrom\\(\\) got 7 bytes "ﬃ\\\\t\\\\"x\\\\"" from 127\\.0\\.0\\.1:${clientPort}$`),
      new RegExp(`^${T}udp: sendto\\(\\) 7 bytes "FFI\\\\t\\\\"X\\\\"" to 127\\.0\\.0\\.1:${clientPort}$`),
    ]);
  });

  test('TCP with piped input: every chunk sent and received is reported, and the sizes add up', async () => {
    const input = Buffer.alloc(200_000, 'a');
    const r = await runCli(['client', '--trace', '--host', '127.0.0.1', '--port', String(server.port)], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(Buffer.alloc(200_000, 'A')));
    const sizes = (verb: string): number[] =>
      [...r.stderr.matchAll(new RegExp(`^${T}tcp: ${verb} (\\d+) bytes "(?:a|A){40}…" \\(first 40 shown\\)$`, 'gm'))].map((m) =>
        Number(m[1]),
      );
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    assert.equal(sum(sizes('send\\(\\)')), 200_000);
    assert.equal(sum(sizes('recv\\(\\) got')), 200_000);
    assertInOrder(r.stderr, [
      /tcp: connected from/,
      /tcp: send\(\)/,
      /tcp: shutdown\(SHUT_WR\): FIN sent/,
      /tcp: the server sent FIN: the reply is complete/,
      /tcp: close\(\)/,
    ]);
  });

  test('a reset is named at the close of its connection socket', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    const local = socket.localPort;
    await serverSaid(server, new RegExp(`accept\\(\\) created connection socket #\\d+ for client 127\\.0\\.0\\.1:${local}$`));
    socket.resetAndDestroy();
    await serverSaid(server, /the client reset the connection \(ECONNRESET\); closing connection socket #\d+/);
  });
});

describe('upcase client --udp --trace against a server that drops everything', () => {
  let server: ReadyServe;
  before(async () => {
    server = await startServe(['--no-tcp', '--drop-rate', '1', '--trace']);
  });
  after(() => server.kill());

  test('each timeout and retry, then giving up; the server says why it did not reply', async () => {
    const p = server.port;
    const r = await runCli([
      'client',
      '--udp',
      '--trace',
      '--timeout',
      '0.1',
      '--retries',
      '1',
      '--host',
      '127.0.0.1',
      '--port',
      String(p),
      'lost',
    ]);
    assert.equal(r.code, 1);
    assertInOrder(r.stderr, [
      NOTICE,
      new RegExp(`^${T}udp: socket\\(\\) on 127\\.0\\.0\\.1:\\d+ `),
      new RegExp(`^${T}udp: sendto\\(\\) 4 bytes "lost" to 127\\.0\\.0\\.1:${p} \\(try 1 of 2\\)$`),
      new RegExp(`^${T}udp: no reply within 100 ms \\(try 1 of 2\\); sending again$`),
      new RegExp(`^${T}udp: sendto\\(\\) 4 bytes "lost" to 127\\.0\\.0\\.1:${p} \\(try 2 of 2\\)$`),
      new RegExp(`^${T}udp: no reply within 100 ms \\(try 2 of 2\\); giving up$`),
      /^upcase: no reply from 127\.0\.0\.1:\d+ \(udp\) after 2 tries$/,
    ]);
    await serverSaid(server, /dropped on purpose/);
    assertInOrder(server.stderr, [
      new RegExp(`^${T}udp: recvfrom\\(\\) got 4 bytes "lost" from 127\\.0\\.0\\.1:\\d+$`),
      new RegExp(`^${T}udp: no reply to 127\\.0\\.0\\.1:\\d+: dropped on purpose to simulate loss \\(--drop-rate\\)$`),
    ]);
  });
});

describe('--trace refuses what it cannot narrate', () => {
  test('the native transports and workers are usage errors', async () => {
    for (const args of [
      ['--tcp-transport', 'native'],
      ['--udp-transport', 'native'],
      ['--workers', '2'],
    ]) {
      const r = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--trace', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^upcase serve: --(tcp-transport|udp-transport|workers): expected .*trace/);
    }
  });

  test('UPCASE_TRACE=false is off, and a value that is not a boolean is a usage error', async () => {
    const off = await runCli(['client', '--host', '127.0.0.1', '--port', '1', '--timeout', '0.1', '--udp', 'x'], {
      env: { UPCASE_TRACE: 'false' },
    });
    assert.doesNotMatch(off.stderr, /trace:/);
    const bad = await runCli(['client', 'x'], { env: { UPCASE_TRACE: 'maybe' } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^upcase client: --trace \(UPCASE_TRACE\): expected .*, got maybe$/m);
  });
});
