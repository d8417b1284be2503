import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { tcpRoundTrip, UdpPeer } from '../helpers/roundtrip.js';
import { spawnServe, startServe } from '../helpers/serve.js';

const TEXTBOOK = fileURLToPath(new URL('../fixtures/textbook/', import.meta.url));

/** Runs a textbook Python client with `line` typed on its stdin. */
function textbookClient(program: 'TCPClient.py' | 'UDPClient.py', port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('python3', [TEXTBOOK + program, '127.0.0.1', String(port)], { timeout: 10_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
    child.stdin!.end(`${line}\n`);
  });
}

describe('upcase (no server)', { concurrency: true }, () => {
  test('--help exits 0 and lists serve', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: upcase/);
    assert.match(r.stdout, /serve/);
  });

  test('serve --help exits 0 and lists the flags', async () => {
    const r = await runCli(['serve', '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--host', '--port', '--no-tcp', '--no-udp', 'UPCASE_PORT']) assert.ok(r.stdout.includes(flag), flag);
  });

  test('--version exits 0', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  test('no command exits 2 with usage on stderr', async () => {
    const r = await runCli([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Usage: upcase/);
  });

  test('--help through the help command exits 0', async () => {
    const r = await runCli(['help', 'serve']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: upcase serve/);
  });

  // Commander's usage errors, worded as the library's are: one line, exit 2, nothing on stdout.
  const usageErrors: Array<[string[], string]> = [
    [['client', '--bogus'], "upcase client: unknown option '--bogus' (see 'upcase client --help')"],
    [['serve', '--prot', '1'], "upcase serve: unknown option '--prot' (did you mean --port?)"],
    [['bench', '-Z'], "upcase bench: unknown option '-Z' (see 'upcase bench --help')"],
    [['ping', '--cuont', '1'], "upcase ping: unknown option '--cuont' (did you mean --count?)"],
    [['frobnicate'], "upcase: unknown command 'frobnicate' (see 'upcase --help')"],
    [['serv'], "upcase: unknown command 'serv' (did you mean serve?)"],
    [['--bogus'], "upcase: unknown option '--bogus' (see 'upcase --help')"],
    [['client', '--port'], "upcase client: option '-p, --port <port>' needs a value (see 'upcase client --help')"],
    [['serve', '--tls-port'], "upcase serve: option '--tls-port <port>' needs a value (see 'upcase serve --help')"],
    [['client', '--tls=yes', 'x'], "upcase client: option '--tls' takes no value (see 'upcase client --help')"],
    [['serve', 'extra'], "upcase serve: unexpected argument 'extra' (see 'upcase serve --help')"],
    [['ping', 'a', 'b'], "upcase ping: unexpected argument 'b' (see 'upcase ping --help')"],
    [['bench', 'marge'], "upcase bench: unknown command 'marge' (see 'upcase bench --help')"],
    [['bench', 'merge'], "upcase bench merge: missing argument 'files' (see 'upcase bench merge --help')"],
    [['bench', 'merge', '--jsno', 'x'], "upcase bench merge: unknown option '--jsno' (did you mean --json?)"],
  ];
  // One at a time (not with the suite's concurrency): fifteen processes at once would crowd the others.
  describe('usage errors', { concurrency: 1 }, () => {
    for (const [args, line] of usageErrors) {
      test(`upcase ${args.join(' ')}`, async () => {
        const r = await runCli(args);
        assert.equal(r.stderr, `${line}\n`);
        assert.equal(r.code, 2);
        assert.equal(r.stdout, '');
      });
    }
  });

  const badValues: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['--port abc', ['serve', '--port', 'abc'], {}, /^upcase serve: --port: expected .*, got abc$/],
    ['--port 70000', ['serve', '--port', '70000'], {}, /^upcase serve: --port: expected .*, got 70000$/],
    ['--port -1', ['serve', '--port=-1'], {}, /^upcase serve: --port: expected .*, got -1$/],
    ['--port 1.5', ['serve', '--port', '1.5'], {}, /^upcase serve: --port: expected .*, got 1\.5$/],
    ['UPCASE_PORT=x', ['serve'], { UPCASE_PORT: 'x' }, /^upcase serve: --port \(UPCASE_PORT\): expected .*, got x$/],
    [
      '--idle-timeout -3',
      ['serve', '--idle-timeout=-3'],
      {},
      /^upcase serve: --idle-timeout: expected a non-negative number of seconds, got -3$/,
    ],
    ['--max-connections 0', ['serve', '--max-connections', '0'], {}, /^upcase serve: --max-connections: expected .*, got 0$/],
    ['--drop-rate 2', ['serve', '--drop-rate', '2'], {}, /^upcase serve: --drop-rate: expected a probability from 0 to 1, got 2$/],
    ['--log-level loud', ['serve', '--log-level', 'loud'], {}, /^upcase serve: --log-level: expected one of .*, got loud$/],
    ['--host ""', ['serve', '--host', ''], {}, /^upcase serve: --host: expected a host name or IP address, got ""$/],
    [
      'UPCASE_UDP_ALLOW_LOW_PORTS=maybe',
      ['serve'],
      { UPCASE_UDP_ALLOW_LOW_PORTS: 'maybe' },
      /^upcase serve: --udp-allow-low-ports \(UPCASE_UDP_ALLOW_LOW_PORTS\): expected true or false, got maybe$/,
    ],
    [
      '--tcp-transport fast',
      ['serve', '--tcp-transport', 'fast'],
      {},
      /^upcase serve: --tcp-transport: expected one of auto, native, stream, got fast$/,
    ],
    [
      'UPCASE_TCP_TRANSPORT=fast',
      ['serve'],
      { UPCASE_TCP_TRANSPORT: 'fast' },
      /^upcase serve: --tcp-transport \(UPCASE_TCP_TRANSPORT\): .*, got fast$/,
    ],
  ];
  for (const [name, given, env, message] of badValues) {
    // Should a bad value ever be accepted, the server must not start on the default port 12000.
    const port = given.some((a) => a.startsWith('--port')) || 'UPCASE_PORT' in env ? [] : ['--port', '0'];
    const host = given.includes('--host') ? [] : ['--host', '127.0.0.1'];
    const args = [...given, ...host, ...port];
    test(`${name} exits 2 naming the option and the value`, async () => {
      const r = await runCli(args, { env });
      assert.equal(r.code, 2, r.stderr);
      // One line: the option, the variable when the value came from there, and the value as typed.
      assert.match(r.stderr.replace(/\n$/, ''), message);
      assert.equal(r.stdout, '');
    });
  }

  for (const transport of ['tcp', 'udp'] as const) {
    test(`--${transport}-transport native without the addon (UPCASE_NATIVE=0) is a usage error (exit 2) with the reason, binding nothing`, async () => {
      const r = await runCli(['serve', `--${transport}-transport`, 'native', '--port', '0', '--host', '127.0.0.1'], {
        env: { UPCASE_NATIVE: '0' },
        timeoutMs: 15_000,
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^upcase serve: --${transport}-transport: expected auto or .*: the native ${transport.toUpperCase()} transport cannot be used here \\(UPCASE_NATIVE=0\\); unset UPCASE_NATIVE.*, got native\n$`,
        ),
      );
      assert.equal(r.stdout, '', 'never ready');
    });
  }

  test('--no-tcp --no-udp exits 2 naming both', async () => {
    const r = await runCli(['serve', '--no-tcp', '--no-udp', '--port', '0', '--host', '127.0.0.1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tcp/);
    assert.match(r.stderr, /udp/);
    assert.equal(r.stdout, '');
  });
});

describe('upcase serve', { concurrency: true }, () => {
  test('prints the ready line with transports and port, serves, and exits 0 on SIGTERM', async (t) => {
    const serve = await startServe(['--log-level', 'warn'], { t });
    assert.match(serve.readyLine, /^The server is ready to receive on tcp\+udp 127\.0\.0\.1:\d+$/);
    assert.ok(serve.port > 0);
    assert.equal((await tcpRoundTrip(serve.port, 'hello, straße')).toString(), 'HELLO, STRASSE');
    const udp = await UdpPeer.open();
    t.after(() => udp.close());
    await udp.send('ﬃ', serve.port);
    assert.equal((await udp.next()).toString(), 'FFI');
    assert.deepEqual(await serve.stop('SIGTERM'), { code: 0, signal: null });
    assert.equal(serve.stderr, '', 'nothing logged at warn level');
  });

  test('exits 0 on SIGINT', async (t) => {
    const serve = await startServe([], { t });
    assert.deepEqual(await serve.stop('SIGINT'), { code: 0, signal: null });
  });

  test('a signal sent the instant the ready line appears still exits 0 (handlers are in first)', async (t) => {
    const runs = ['SIGTERM', 'SIGINT', 'SIGTERM', 'SIGINT'] as const;
    const results = await Promise.all(
      runs.map(async (signal) => {
        const serve = spawnServe(['--log-level', 'silent'], { t });
        await serve.ready();
        serve.signal(signal);
        return serve.exitWithin(15_000);
      }),
    );
    assert.deepEqual(
      results,
      runs.map(() => ({ code: 0, signal: null })),
    );
  });

  test('SIGTERM with an open connection: drains it, then exits 0', async (t) => {
    const serve = await startServe(['--drain-timeout', '0.5', '--log-level', 'silent'], { t });
    const socket = net.connect(serve.port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => {});
    assert.deepEqual(await serve.stop('SIGTERM'), { code: 0, signal: null });
  });

  test('UPCASE_PORT and UPCASE_HOST configure it; the flag wins over the variable', async (t) => {
    const serve = await startServe(['--port', '0'], {
      env: { UPCASE_HOST: '127.0.0.1', UPCASE_PORT: '1', UPCASE_LOG_LEVEL: 'silent' },
      loopback: false,
      t,
    });
    assert.match(serve.readyLine, /127\.0\.0\.1:\d+$/);
    assert.notEqual(serve.port, 1);
    await serve.stop();
  });

  test('--no-udp and --no-tcp show in the ready line', async (t) => {
    const tcpOnly = await startServe(['--no-udp'], { t });
    assert.match(tcpOnly.readyLine, / on tcp 127\.0\.0\.1:\d+$/);
    const udpOnly = await startServe(['--no-tcp'], { t });
    assert.match(udpOnly.readyLine, / on udp 127\.0\.0\.1:\d+$/);
    await Promise.all([tcpOnly.stop(), udpOnly.stop()]);
  });

  test('the textbook Python TCP and UDP clients get their reply', async (t) => {
    const serve = await startServe(['--log-level', 'silent'], { t });
    // The prompt has no newline, so it prefixes the printed reply.
    assert.equal(
      await textbookClient('TCPClient.py', serve.port, 'hello, straße'),
      'Input lowercase sentenceFrom server:  HELLO, STRASSE\n',
    );
    assert.equal(await textbookClient('UDPClient.py', serve.port, 'hello, ﬃ'), 'Input lowercase sentenceHELLO, FFI\n');
    await serve.stop();
  });

  test('TCP port in use: exit 1 and one stderr line naming port, transport and reason', async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => blocker.close());
    const port = (blocker.address() as net.AddressInfo).port;
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port)]);
    assert.equal(r.code, 1);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`127\\.0\\.0\\.1:${port}\\b`));
    assert.match(lines[0]!, /\btcp\b/);
    assert.match(lines[0]!, /address already in use/);
    assert.equal(r.stdout, '');
  });

  test('UDP port in use with --no-tcp: the line names udp', async (t) => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => blocker.bind(0, '127.0.0.1', resolve));
    t.after(() => blocker.close());
    const port = blocker.address().port;
    const r = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port), '--no-tcp']);
    assert.equal(r.code, 1);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`:${port}\\b`));
    assert.match(lines[0]!, /\budp\b/);
    assert.match(lines[0]!, /address already in use/);
  });
});
