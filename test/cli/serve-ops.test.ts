// `upcase serve` operations as a user sees them: graceful drain (also as PID 1), configuration
// through UPCASE_* variables, usage errors, help text.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { Option } from 'commander';
import { parseServeArgs, serveCommand } from '../../src/cli/serve.js';
import { status } from '../helpers/operator.js';
import { pool, tcpRoundTrip } from '../helpers/roundtrip.js';
import { spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

// Running node as PID 1 of a new PID namespace needs root (or user namespaces); check once.
// --kill-child: should the test fail, killing `unshare` takes the server (PID 1 inside, deaf to SIGTERM) with it.
const UNSHARE = ['unshare', '--pid', '--fork', '--kill-child'];
const canUnshare = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'true'], { stdio: 'ignore' }).status === 0;

describe(`graceful drain, single process${canUnshare ? ', as PID 1' : ''}`, () => {
  it('on SIGTERM: /readyz 503 first, the open connection finishes intact, exit 0', async () => {
    const p = spawnServe(['--metrics-port', '0', '--drain-timeout', '10'], {
      prefix: canUnshare ? UNSHARE : [],
    });
    try {
      const { port, metrics } = await p.ready();
      assert.equal(await status(metrics!, '/readyz'), 200);
      // With unshare, the child is `unshare`; the server is its only child, PID 1 inside.
      let serverPid = p.child.pid!;
      if (canUnshare) {
        serverPid = Number(readFileSync(`/proc/${serverPid}/task/${serverPid}/children`, 'utf8').trim());
        assert.equal((await p.log((e) => e.msg === 'listening')).pid, 1, 'node runs as PID 1');
      }

      const socket = net.connect({ host: '127.0.0.1', port });
      const received: Buffer[] = [];
      socket.on('data', (c: Buffer) => received.push(c));
      await once(socket, 'connect');
      socket.write('before the signal, ');
      await until(() => received.length > 0, 'the first reply');

      process.kill(serverPid, 'SIGTERM');
      await until(async () => (await status(metrics!, '/readyz')) === 503, '/readyz to turn 503', 5000);
      assert.equal(await status(metrics!, '/healthz'), 200);
      // No new connections while draining.
      await assert.rejects(tcpRoundTrip(port, 'new'), { code: 'ECONNREFUSED' });
      // The open connection still gets every byte.
      socket.end('after the signal: straße');
      await once(socket, 'close');
      assert.equal(Buffer.concat(received).toString(), 'BEFORE THE SIGNAL, AFTER THE SIGNAL: STRASSE');
      assert.deepEqual(await p.exitWithin(15_000), { code: 0, signal: null });
      const msgs = p.logs().map((e) => e.msg);
      assert.ok(msgs.indexOf('shutting down: not ready, no new connections, draining') < msgs.indexOf('closed'));
    } finally {
      p.kill();
    }
  });
});

describe('configuration through UPCASE_* variables', () => {
  it('takes settings from the environment, and a flag wins over its variable', async () => {
    const p = spawnServe(['--port', '0', '--log-level', 'warn'], {
      // UPCASE_PORT is invalid but --port is given, so it is never read; --log-level beats UPCASE_LOG_LEVEL.
      env: { UPCASE_HOST: '127.0.0.1', UPCASE_PORT: 'not-a-port', UPCASE_UDP: 'false', UPCASE_LOG_LEVEL: 'debug' },
      loopback: false,
    });
    try {
      const { transports, host, port } = await p.ready();
      assert.equal(transports, 'tcp');
      assert.equal(host, '127.0.0.1');
      assert.equal((await tcpRoundTrip(port, 'env')).toString(), 'ENV');
      p.signal('SIGTERM');
      assert.deepEqual(await p.exitWithin(15_000), { code: 0, signal: null });
      assert.deepEqual(
        p.logs().filter((e) => (e.level as number) < 40),
        [],
        'no info or debug lines at --log-level warn',
      );
    } finally {
      p.kill();
    }
  });

  it('rejects invalid values at startup with exit 2, naming the option, the variable and the value', async () => {
    const cases: Array<{ env?: Record<string, string>; args?: string[]; expect: RegExp[] }> = [
      { env: { UPCASE_PORT: '70000' }, expect: [/--port/, /UPCASE_PORT/, /got 70000/] },
      { env: { UPCASE_TCP: 'maybe' }, expect: [/--no-tcp/, /UPCASE_TCP/, /got maybe/] },
      { env: { UPCASE_WORKERS: 'many' }, expect: [/--workers/, /UPCASE_WORKERS/, /got many/] },
      { env: { UPCASE_METRICS_PORT: '-5' }, expect: [/--metrics-port/, /UPCASE_METRICS_PORT/, /got -5/] },
      { env: { UPCASE_LOG_LEVEL: 'loud' }, expect: [/--log-level/, /UPCASE_LOG_LEVEL/, /got loud/] },
      { env: { UPCASE_DRAIN_TIMEOUT: 'soon' }, expect: [/--drain-timeout/, /UPCASE_DRAIN_TIMEOUT/, /got soon/] },
      { args: ['--idle-timeout', '-1'], expect: [/--idle-timeout/, /got -1/] },
      { args: ['--workers', '0'], expect: [/--workers/, /got 0/] },
      {
        env: { UPCASE_TCP: 'false', UPCASE_UDP: 'off' },
        expect: [/--no-tcp \(UPCASE_TCP\) and --no-udp \(UPCASE_UDP\)/, /at least one transport/],
      },
    ];
    // A few at a time: each is a node process start, and the machine may be busy.
    await pool(cases, 3, async (c) => {
      // --port 0 only where the case does not test UPCASE_PORT (the flag would win).
      const port = c.env?.UPCASE_PORT === undefined ? ['--port', '0'] : [];
      const p = spawnServe(['--host', '127.0.0.1', ...port, ...(c.args ?? [])], { env: c.env, loopback: false });
      const exit = await p.exitWithin(30_000);
      const stderr = p.stderr;
      assert.equal(exit.code, 2, `${JSON.stringify(c)}: exit ${exit.code}\n${stderr}`);
      for (const re of c.expect) assert.match(stderr, re, JSON.stringify(c));
      assert.equal(p.stdout, '', 'never ready');
    });
  });

  it('fails with exit 1 and the reason when the workers cannot listen', async (t) => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    t.after(() => taken.close());
    const port = (taken.address() as net.AddressInfo).port;
    const p = spawnServe(['--host', '127.0.0.1', '--port', String(port), '--workers', '2'], { loopback: false });
    assert.equal((await p.exitWithin(15_000)).code, 1);
    assert.match(p.stderr, new RegExp(`upcase: cannot listen on 127\\.0\\.0\\.1:${port} \\(tcp\\): address already in use$`, 'm'));
  });

  it('parses boolean variables by value (UPCASE_UDP_ALLOW_LOW_PORTS=false stays off)', async (t) => {
    const saved = { ...process.env };
    t.after(() => {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    });
    process.env.UPCASE_UDP_ALLOW_LOW_PORTS = 'false';
    process.env.UPCASE_TCP = 'TRUE';
    process.env.UPCASE_UDP = '0';
    let flags = await parseServeArgs([]);
    assert.equal(flags.udpAllowLowPorts, false);
    assert.equal(flags.tcp, true);
    assert.equal(flags.udp, false);
    process.env.UPCASE_UDP_ALLOW_LOW_PORTS = 'yes';
    process.env.UPCASE_UDP = 'on';
    flags = await parseServeArgs(['--no-tcp']);
    assert.equal(flags.udpAllowLowPorts, true);
    assert.equal(flags.tcp, false, 'the flag wins over UPCASE_TCP=true');
    assert.equal(flags.tcpTransport, 'auto');
    process.env.UPCASE_TCP_TRANSPORT = 'stream';
    assert.equal((await parseServeArgs([])).tcpTransport, 'stream');
    assert.equal((await parseServeArgs(['--tcp-transport', 'native'])).tcpTransport, 'native', 'the flag wins');
    process.env.UPCASE_WORKERS = 'auto';
    process.env.UPCASE_METRICS_PORT = '9464';
    flags = await parseServeArgs(['--workers', '3']);
    assert.equal(flags.workers, 3);
    assert.equal(flags.metricsPort, 9464);
    delete process.env.UPCASE_WORKERS;
    assert.equal((await parseServeArgs([])).workers, 1);
    assert.equal((await parseServeArgs(['--workers', 'AUTO'])).workers, 'auto');
  });

  it('--help lists every flag with its default and its variable', () => {
    const command = serveCommand(() => {});
    const help = command.createHelp();
    const options = command.options as Option[];
    assert.ok(options.length >= 15);
    for (const option of options) {
      const text = help.optionDescription(option);
      assert.match(text, /\(.*default: .+; env: UPCASE_[A-Z_]+(=true\|false)?\)$/, `${option.flags}: ${text}`);
    }
    const rendered = command.helpInformation();
    assert.match(rendered, /--no-udp\s+do not serve UDP [\s\S]*?\(default: on; env:\s+UPCASE_UDP=true\|false\)/);
    assert.match(rendered, /--workers <n\|auto>/);
    assert.match(rendered, /--metrics-port <port>[\s\S]*default: off/);
  });
});
