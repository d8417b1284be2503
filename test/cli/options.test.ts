import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { COMMAND_OPTIONS } from '../../src/cli/tables.js';
import { resolveTable } from '../../src/options/table.js';
import { startServer, type UpcaseServer } from '../../src/server/server.js';
import { runCli } from '../helpers/cli.js';
import { ipv6LoopbackAvailable, pool } from '../helpers/roundtrip.js';
import { suiteServer } from '../helpers/serve.js';

/**
 * The conventions every command shares (docs/cli.md): each option's flag and
 * UPCASE_* variable, seconds everywhere, and usage errors as one line naming the
 * option and the value, exit 2. Driven by the option tables themselves, so a new
 * row is covered without a new test.
 */

const COMMANDS = Object.keys(COMMAND_OPTIONS);

/** A silent UDP port: it takes datagrams and never answers. */
async function silentUdp(): Promise<{ port: number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

describe('every command: --help lists each flag with its default and its variable', { concurrency: true }, () => {
  for (const command of COMMANDS) {
    test(`upcase ${command} --help`, async () => {
      const r = await runCli([command, '--help']);
      assert.equal(r.code, 0, r.stderr);
      const help = r.stdout.replace(/\s+/g, ' ');
      for (const row of resolveTable(COMMAND_OPTIONS[command]!)) {
        assert.ok(help.includes(row.flags), `${command}: ${row.flags}`);
        assert.ok(help.includes(`env: ${row.env}`), `${command}: ${row.env}`);
        const shown = row.defaultShown?.replace(/`/g, '');
        if (shown !== undefined) assert.ok(help.includes(`default: ${shown}`), `${command}: default of ${row.flags}`);
      }
    });
  }
});

/**
 * One bad value for a row, by turns across the rows so each kind of mistake is covered:
 * text that is no value of its kind, a number below the range (from the variable),
 * a number above it. Undefined for a row without a checkable value (a switch, a path).
 */
function badValue(
  kind: { arg?: string; choices?: readonly string[]; min?: number; max?: number; fromText(t: string): unknown },
  turn: number,
): { value: string; viaEnv: boolean } | undefined {
  if (kind.arg === undefined) return undefined;
  if (kind.choices !== undefined) return { value: 'bogus', viaEnv: turn % 2 === 1 };
  if (typeof kind.fromText('5') !== 'number') return undefined;
  if (turn % 3 === 1 && kind.min !== undefined) return { value: String(kind.min - 1), viaEnv: true };
  if (turn % 3 === 2 && kind.max !== undefined && kind.max < 1e6) return { value: String(kind.max + 1), viaEnv: false };
  return { value: 'abc', viaEnv: false };
}

/** Flags that keep a run short (and off fixed ports) should a bad value ever be accepted. */
const SAFE: Record<string, Array<[string, string]>> = {
  serve: [
    ['--host', '127.0.0.1'],
    ['--port', '0'],
  ],
  client: [['--timeout', '0.2']],
  ping: [
    ['--count', '1'],
    ['--timeout', '0.2'],
  ],
  bench: [
    ['--duration', '0.1'],
    ['--warmup', '0'],
  ],
};

describe('every usage error exits 2 with one line naming the option (and variable) and the value', () => {
  const cases: Array<{ name: string; args: string[]; env: Record<string, string>; line: RegExp }> = [];
  let turn = 0;
  for (const command of COMMANDS) {
    for (const row of resolveTable(COMMAND_OPTIONS[command]!)) {
      const bad = badValue(row.kind, turn);
      if (bad === undefined) continue;
      turn++;
      const { value, viaEnv } = bad;
      const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const where = viaEnv ? `${row.flag} \\(${row.env}\\)` : row.flag;
      // The flag wins over the variable, so a safe flag for the same option would hide the variable.
      const safe = SAFE[command]!.filter(([flag]) => flag !== row.flag).flat();
      cases.push({
        name: `${command} ${viaEnv ? `${row.env}=${value}` : `${row.flag}=${value}`}`,
        args: [command, ...safe, ...(viaEnv ? [] : [`${row.flag}=${value}`]), ...(command === 'client' ? ['x'] : [])],
        env: viaEnv ? { [row.env]: value } : {},
        line: new RegExp(`^upcase ${command}: ${where}: expected .+, got ${escaped}\\n$`),
      });
    }
  }

  test(`${cases.length} bad values (every numeric and choice option of every command), each a usage error`, async () => {
    assert.ok(cases.length > 30);
    const failures: string[] = [];
    await pool(cases, 4, async (c) => {
      const r = await runCli(c.args, { env: c.env, timeoutMs: 20_000 });
      if (r.code !== 2 || !c.line.test(r.stderr) || r.stdout !== '')
        failures.push(`${c.name}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
    });
    assert.deepEqual(failures, []);
  });
});

describe('UPCASE_* variables work for every command; the flag wins', () => {
  const shared = suiteServer({ udpRateLimit: 0 });

  test('client: UPCASE_PORT and UPCASE_HOST reach the server; UPCASE_UDP=true switches to UDP', async () => {
    const tcp = await runCli(['client', 'hi'], { env: { UPCASE_PORT: String(shared.port), UPCASE_HOST: '127.0.0.1' } });
    assert.equal(tcp.code, 0, tcp.stderr);
    assert.equal(tcp.stdout, 'HI\n');
    const udp = await runCli(['client', 'hi'], { env: { UPCASE_PORT: String(shared.port), UPCASE_HOST: '127.0.0.1', UPCASE_UDP: 'true' } });
    assert.equal(udp.stdout, 'HI\n');
    const wins = await runCli(['client', '--port', String(shared.port), 'hi'], { env: { UPCASE_PORT: '1' } });
    assert.equal(wins.stdout, 'HI\n', 'the flag wins over the variable');
  });

  test('ping: UPCASE_PORT, UPCASE_COUNT, UPCASE_INTERVAL and UPCASE_TIMEOUT', async () => {
    const r = await runCli(['ping', '127.0.0.1'], {
      env: { UPCASE_PORT: String(shared.port), UPCASE_COUNT: '2', UPCASE_INTERVAL: '0.05', UPCASE_TIMEOUT: '1' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^2 packets transmitted, 2 received/m);
  });

  test('bench: UPCASE_PORT, UPCASE_DURATION, UPCASE_WARMUP and UPCASE_TIMEOUT (seconds) show in the result', async () => {
    const r = await runCli(['bench', '--json', '-c', '1'], {
      env: { UPCASE_PORT: String(shared.port), UPCASE_HOST: '127.0.0.1', UPCASE_DURATION: '0.2', UPCASE_WARMUP: '0', UPCASE_TIMEOUT: '2' },
    });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { port: number; timeout: number; warmup: number };
    assert.equal(result.port, shared.port);
    assert.equal(result.timeout, 2, 'bench --timeout is seconds');
    assert.equal(result.warmup, 0);
  });

  test('bench --timeout 2 is two seconds, as is 2s; 500ms is half a second', async () => {
    for (const [text, seconds] of [
      ['2', 2],
      ['2s', 2],
      ['500ms', 0.5],
    ] as const) {
      const r = await runCli([
        'bench',
        '--json',
        '-c',
        '1',
        '-d',
        '0.1',
        '--warmup',
        '0',
        '-H',
        '127.0.0.1',
        '-p',
        String(shared.port),
        '--timeout',
        text,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { timeout: number }).timeout, seconds, text);
    }
  });

  test('bench reaches a server on 127.0.0.1 through the default host, localhost (TCP and UDP)', async () => {
    for (const transport of ['--tcp', '--udp']) {
      const r = await runCli(['bench', transport, '--json', '-c', '1', '-d', '0.1', '--warmup', '0', '-p', String(shared.port)]);
      assert.equal(r.code, 0, `${transport}: ${r.stderr}`);
      const result = JSON.parse(r.stdout) as { host: string; requests: { ok: number } };
      assert.equal(result.host, 'localhost');
      assert.ok(result.requests.ok > 0, transport);
    }
  });
});

describe('durations are seconds', { concurrency: true }, () => {
  test('client --udp --timeout 0.3 --retries 1 gives up after two tries of 0.3 s, not 300 s', async (t) => {
    const silent = await silentUdp();
    t.after(() => silent.close());
    const started = Date.now();
    const r = await runCli(['client', '--udp', '-H', '127.0.0.1', '-p', String(silent.port), '--timeout', '0.3', '--retries', '1', 'hi'], {
      timeoutMs: 15_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `upcase: no reply from 127.0.0.1:${silent.port} (udp) after 2 tries\n`);
    assert.ok(Date.now() - started >= 600, 'waited for both tries');
  });

  test('ping -W 0.3 waits 0.3 s for a reply, not 0.3 ms: a silent server is one timeout per ping', async (t) => {
    const silent = await silentUdp();
    t.after(() => silent.close());
    const r = await runCli(['ping', '127.0.0.1', '-p', String(silent.port), '-c', '2', '-i', '0.1', '-W', '0.3'], { timeoutMs: 15_000 });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^2 packets transmitted, 0 received, 100% packet loss/m);
  });

  test('ping -W 1 against a server that answers gets every reply (it is one second, as in ping(8))', async (t) => {
    const server = await startServer({ host: '127.0.0.1', port: 0, tcp: false });
    t.after(() => server.close());
    const r = await runCli(['ping', '127.0.0.1', '-p', String(server.address().port), '-c', '3', '-i', '0.05', '-W', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 packets transmitted, 3 received, 0% packet loss/m);
  });
});

describe('ping(8) habits', { concurrency: true }, () => {
  const shared = suiteServer({ tcp: false, udpRateLimit: 0 });

  test('an unknown host: one error line, no PING header, exit 2', async () => {
    const r = await runCli(['ping', 'no-such-host.invalid', '-c', '1']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr);
    assert.match(r.stderr, /no-such-host\.invalid/);
  });

  test('-q prints only the header line and the summary', async () => {
    const r = await runCli(['ping', '-q', '127.0.0.1', '-p', String(shared.port), '-c', '3', '-i', '0.02']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `PING 127.0.0.1:${shared.port} (udp): 56 data bytes`);
    assert.equal(lines[1], `--- 127.0.0.1:${shared.port} upcase ping statistics ---`);
    assert.match(lines[2]!, /^3 packets transmitted, 3 received, 0% packet loss/);
    assert.match(lines[3]!, /^rtt min\/avg\/max\/mdev = /);
    // The rest is the summary's other lines (median, jitter, counts): no line per probe.
    assert.equal(lines.filter((l) => /bytes from|seq=/.test(l)).length, 0, r.stdout);
  });

  test('-w stops the run after that many seconds whatever the count; exit 0 when a reply came', async () => {
    const r = await runCli(['ping', '127.0.0.1', '-p', String(shared.port), '-i', '0.1', '-w', '0.55'], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    const stats = /^(\d+) packets transmitted, (\d+) received/m.exec(r.stdout);
    assert.ok(stats, r.stdout);
    assert.ok(Number(stats[1]) >= 2 && Number(stats[1]) <= 7, r.stdout);
  });

  test('-w against a silent port: exit 1, as ping(8)', async (t) => {
    const silent = await silentUdp();
    t.after(() => silent.close());
    const r = await runCli(['ping', '127.0.0.1', '-p', String(silent.port), '-i', '0.1', '-w', '0.3'], { timeoutMs: 15_000 });
    assert.equal(r.code, 1);
    assert.match(r.stdout, / 0 received, 100% packet loss/);
  });

  test('the host as an argument or as --host; both, and different, is a usage error', async () => {
    const flag = await runCli(['ping', '-H', '127.0.0.1', '-p', String(shared.port), '-c', '1']);
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stdout, /^PING 127\.0\.0\.1:/);
    const both = await runCli(['ping', '127.0.0.1', '-H', 'localhost', '-p', String(shared.port), '-c', '1']);
    assert.equal(both.code, 2);
    assert.equal(both.stderr, 'upcase ping: --host: expected the same host as the argument (127.0.0.1), got localhost\n');
    const env = await runCli(['ping', '127.0.0.1', '-p', String(shared.port), '-c', '1'], { env: { UPCASE_HOST: 'no-such-host.invalid' } });
    assert.equal(env.code, 0, 'the argument wins over UPCASE_HOST');
  });
});

describe('validated before a long run starts', () => {
  test('bench --report into a directory that does not exist: exit 2 at once, not after the run', async () => {
    // A 60 s run would time the test out: the report path is refused first.
    const r = await runCli(['bench', '-d', '60', '-p', '9', '--report', '/nonexistent/x.svg'], { timeoutMs: 10_000 });
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      'upcase bench: --report: expected a file in a directory that exists and is writable (/nonexistent is not), got /nonexistent/x.svg\n',
    );
    assert.equal(r.stdout, '');
  });

  test('bench --report with an unknown format: exit 2', async () => {
    const r = await runCli(['bench', '-d', '60', '-p', '9', '--report', 'out.txt'], { timeoutMs: 10_000 });
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'upcase bench: --report: expected a file name ending in .svg, .png or .html, got out.txt\n');
  });
});

describe('IPv6 and dual-stack', async () => {
  const v6 = await ipv6LoopbackAvailable();
  const skip = v6 ? false : 'this host cannot bind ::1';
  let server: UpcaseServer | undefined;
  let port = '';
  before(async () => {
    if (!v6) return;
    server = await startServer({ host: '::', port: 0, udpRateLimit: 0 });
    port = String(server.address().port);
  });
  after(() => server?.close());

  test('client -H [::1] and -H ::1 reach a server on ::', { skip }, async () => {
    for (const host of ['[::1]', '::1']) {
      const r = await runCli(['client', '-H', host, '-p', port, 'hi']);
      assert.equal(r.stdout, 'HI\n', `${host}: ${r.stderr}`);
    }
  });

  test('bench with the default host, localhost, reaches a server on :: (TCP and UDP)', { skip }, async () => {
    for (const transport of ['--tcp', '--udp']) {
      const r = await runCli(['bench', transport, '--json', '-c', '1', '-d', '0.1', '--warmup', '0', '-p', port]);
      assert.equal(r.code, 0, `${transport}: ${r.stderr}`);
      assert.ok((JSON.parse(r.stdout) as { requests: { ok: number } }).requests.ok > 0, transport);
    }
  });
});
