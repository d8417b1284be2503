import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Started, startOnFreePort, TEXTBOOK } from '../helpers/programs.js';
import { run, runCli } from '../helpers/cli.js';
import { type ReadyServe, startServe } from '../helpers/serve.js';

// The textbook's own Python programs (test/fixtures/textbook/, fixed only to
// run on Python 3 and to take a free port) against upcase, both ways, over TCP
// and UDP. `python3 -u` so the servers' ready line is not stuck in a buffer.

describe("upcase client against the textbook's TCPServer.py", () => {
  let server: Started;
  before(async () => {
    server = await startOnFreePort(
      'tcp',
      'python3',
      (port) => ['-u', `${TEXTBOOK}TCPServer.py`, String(port)],
      /The server is ready to receive\n/,
    );
  });
  after(() => server.stop());

  test('MESSAGE arguments: one connection, one reply each', async () => {
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(server.port), 'hello', 'straße']);
    assert.equal(r.stdout.toString(), 'HELLO\nSTRASSE\n');
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  });

  test('piped stdin', async () => {
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(server.port)], { input: 'one sentence\n' });
    assert.equal(r.stdout.toString(), 'ONE SENTENCE\n');
    assert.equal(r.code, 0, r.stderr);
  });

  test('over 1024 bytes: prints what the server sent back and says it was cut', async () => {
    // TCPServer.py answers one recv(1024) and closes.
    const message = 'a'.repeat(3000);
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(server.port), message]);
    const reply = r.stdout.toString();
    assert.ok(reply.length > 1 && reply.length <= 1025 && /^A+\n$/.test(reply), reply);
    // Either the close reaches us as an end (complete, but short: exit 3) or as a reset (exit 1).
    if (r.code === 3)
      assert.match(r.stderr, /^upcase: warning: the reply has \d+ of the 3000 bytes expected; the server truncated the message\n$/);
    else {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^upcase: connection reset by 127\.0\.0\.1:\d+ \(tcp\) after \d+ reply bytes/);
    }
  });

  test('piped input over 1024 bytes: the same warning and exit status 3 (or a reset, exit 1)', async () => {
    const input = Buffer.alloc(5000, 'c');
    const r = await runCli(['client', '--host', '127.0.0.1', '--port', String(server.port)], { input });
    const reply = r.stdout.toString();
    assert.ok(/^C*$/.test(reply) && reply.length <= 1024, reply);
    if (r.code === 3) {
      assert.equal(reply.length, 1024);
      assert.match(r.stderr, /^upcase: warning: the reply has 1024 of the 5000 bytes expected; the server truncated the message\n$/m);
    } else {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^upcase: connection reset by 127\.0\.0\.1:\d+ \(tcp\)/);
    }
  });
});

describe("upcase client --udp against the textbook's UDPServer.py", () => {
  let server: Started;
  before(async () => {
    server = await startOnFreePort(
      'udp',
      'python3',
      (port) => ['-u', `${TEXTBOOK}UDPServer.py`, String(port)],
      /The server is ready to receive\n/,
    );
  });
  after(() => server.stop());

  test('MESSAGE arguments and piped lines', async () => {
    const args = ['client', '--udp', '--host', '127.0.0.1', '--port', String(server.port)];
    const a = await runCli([...args, 'hello', 'straße']);
    assert.equal(a.stdout.toString(), 'HELLO\nSTRASSE\n');
    assert.equal(a.code, 0, a.stderr);
    const b = await runCli(args, { input: 'line one\nline two\n' });
    assert.equal(b.stdout.toString(), 'LINE ONE\nLINE TWO\n');
    assert.equal(b.code, 0, b.stderr);
  });

  test('over 2048 bytes: the server reads only 2048; the reply is printed with a warning', async () => {
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(server.port), 'b'.repeat(3000)]);
    assert.equal(r.stdout.toString(), `${'B'.repeat(2048)}\n`);
    assert.equal(r.stderr, 'upcase: warning: the reply has 2048 of the 3000 bytes expected; the server truncated the message\n');
    assert.equal(r.code, 3);
  });

  test('piped lines over 2048 bytes: every reply printed, one warning naming the first cut line, exit status 3', async () => {
    const input = `short\n${'d'.repeat(3000)}\nok\n${'e'.repeat(2500)}\n`;
    const r = await runCli(['client', '--udp', '--host', '127.0.0.1', '--port', String(server.port)], { input });
    assert.equal(r.stdout.toString(), `SHORT\n${'D'.repeat(2048)}\nOK\n${'E'.repeat(2048)}\n`);
    assert.equal(
      r.stderr,
      'upcase: warning: 2 of 4 replies were not the uppercase of their line (2 truncated by the server); ' +
        'the first, line 2: the reply has 2048 of the 3000 bytes expected; the server truncated the message\n',
    );
    assert.equal(r.code, 3);
  });
});

describe("the textbook's clients against upcase serve", () => {
  let serve: ReadyServe;
  before(async () => {
    serve = await startServe(['--log-level', 'silent']);
  });
  after(() => serve.close());

  test('TCPClient.py', async () => {
    const r = await run('python3', [`${TEXTBOOK}TCPClient.py`, '127.0.0.1', String(serve.port)], { input: 'hello, straße\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentenceFrom server:  HELLO, STRASSE\n');
    assert.equal(r.code, 0, r.stderr);
  });

  test('UDPClient.py', async () => {
    const r = await run('python3', [`${TEXTBOOK}UDPClient.py`, '127.0.0.1', String(serve.port)], { input: 'hello, straße\n' });
    assert.equal(r.stdout.toString(), 'Input lowercase sentenceHELLO, STRASSE\n');
    assert.equal(r.code, 0, r.stderr);
  });
});
