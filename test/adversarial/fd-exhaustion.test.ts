/**
 * File-descriptor exhaustion under `prlimit --nofile`: more clients than fds.
 * The server must not crash, must not spin (its CPU time stays low while
 * clients keep trying), and must serve again once fds free up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { startServer } from '../../src/server/server.js';
import { probe, probeUntilServed, tcpRoundTrip } from '../helpers/roundtrip.js';
import { cpuTicks, startServe, TICKS_PER_SECOND } from '../helpers/serve.js';
import { delay, until } from '../helpers/wait.js';
import { captureLogger } from '../helpers/logs.js';

const NOFILE = 64;

interface Holder {
  socket: net.Socket;
  served: boolean;
  closed: boolean;
}

function hold(port: number, count: number): Holder[] {
  return Array.from({ length: count }, () => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const h: Holder = { socket, served: false, closed: false };
    socket.on('error', () => {});
    socket.on('connect', () => socket.write('hold'));
    socket.on('data', (d: Buffer) => {
      if (d.toString() === 'HOLD') h.served = true;
    });
    socket.on('close', () => {
      h.closed = true;
    });
    return h;
  });
}

/**
 * The server's CPU use (fraction of one core) over `ms` while a client keeps
 * knocking: a new connection attempt every 10 ms, each dropped at once.
 */
async function cpuWhileKnocking(pid: number, port: number, ms = 2000): Promise<{ cpu: number; attempts: number }> {
  let knocking = true;
  let attempts = 0;
  const knocker = (async () => {
    while (knocking) {
      attempts++;
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('connect', () => s.write('knock'));
      setTimeout(() => s.destroy(), 200).unref();
      await delay(10);
    }
  })();
  const t0 = performance.now();
  const c0 = cpuTicks(pid);
  await delay(ms);
  const cpu = (cpuTicks(pid) - c0) / TICKS_PER_SECOND / ((performance.now() - t0) / 1000);
  knocking = false;
  await knocker;
  return { cpu, attempts };
}

describe(`prlimit --nofile=${NOFILE}`, () => {
  test('CLI: more clients than fds → max connections fitted to the limit, refusals counted in the log, no spin, serves again', async (t) => {
    const server = await startServe(['--drain-timeout', '0', '--idle-timeout', '30'], {
      prefix: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`],
    });
    let holders: Holder[] = [];
    try {
      await until(() => server.logs().some((l) => l.msg === 'listening'), 'the listening log line', 5000);
      const lowered = server.logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('max connections lowered'));
      assert.ok(lowered, 'no warning that max connections was lowered');
      const effective = lowered.effective as number;
      assert.ok(effective > 0 && effective < NOFILE, `effective limit ${effective}`);
      assert.equal(server.logs().find((l) => l.msg === 'listening')?.maxConnections, effective);

      holders = hold(server.port, 100);
      const served = () => holders.filter((h) => h.served).length;
      const refused = () => holders.filter((h) => h.closed && !h.served).length;
      await until(() => served() + refused() === 100, `all 100 answered or refused (${served()} + ${refused()})`, 15_000);
      assert.equal(served(), effective);
      assert.equal(refused(), 100 - effective);

      const { cpu, attempts } = await cpuWhileKnocking(server.pid, server.port);
      t.diagnostic(
        `effective max connections ${effective}; server CPU ${(cpu * 100).toFixed(1)}% of a core during ${attempts} refused attempts`,
      );
      assert.ok(cpu < 0.5, `server used ${(cpu * 100).toFixed(0)}% of a core: a busy loop?`);
      assert.ok(server.alive(), 'server died');

      for (const h of holders) h.socket.destroy();
      await probeUntilServed(server.port);
    } finally {
      for (const h of holders) h.socket.destroy();
      const exit = await server.stop();
      assert.deepEqual(exit, { code: 0, signal: null });
    }
    const refusals = server
      .logs()
      .filter((l) => l.msg === 'connection refused: max connections reached')
      .reduce((sum, l) => sum + ((l.suppressed as number | undefined) ?? 1), 0);
    assert.ok(refusals >= 100 - 40, `only ${refusals} refusals logged`);
  });

  test('library: fds used up by something else (accept hits EMFILE) → no crash, no spin, serves again once freed', async (t) => {
    const fixture = fileURLToPath(new URL('../fixtures/fd-hog-server.mjs', import.meta.url));
    const child = spawn('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, process.execPath, fixture], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
    const next = async (prefix: string): Promise<string> => {
      await until(() => lines.some((l) => l.startsWith(prefix)), `"${prefix}" from the fixture`, 15_000);
      return lines.find((l) => l.startsWith(prefix))!;
    };
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    try {
      const [, portText, hoarded] = (await next('ready')).split(' ');
      const port = Number(portText);
      // libuv accepts and closes each connection with its reserved fd: clients see a close, not a hang.
      const refused = await tcpRoundTrip(port, 'nobody home', { timeoutMs: 5000 }).then(
        (reply) => reply.length,
        () => 0,
      );
      assert.equal(refused, 0);
      const { cpu, attempts } = await cpuWhileKnocking(child.pid!, port);
      t.diagnostic(`${hoarded} fds hoarded; server CPU ${(cpu * 100).toFixed(1)}% of a core during ${attempts} attempts`);
      assert.ok(cpu < 0.5, `server used ${(cpu * 100).toFixed(0)}% of a core: a busy loop?`);
      assert.equal(exited, false, 'server died');
      child.stdin!.write('free\n');
      await next('freed');
      await probeUntilServed(port, false);
    } finally {
      if (!exited) {
        child.stdin!.write('quit\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await once(child, 'exit');
        clearTimeout(timer);
      }
    }
  });

  test('accept errors that do reach the server are counted by code and logged rate-limited; it keeps serving', async () => {
    // libuv handles EMFILE/ENFILE itself (above); other accept failures, and other
    // platforms, surface as 'error' on the listener.
    const captured = captureLogger('info');
    const server = await startServer({ host: '127.0.0.1', port: 0, udp: false, logger: captured.logger });
    try {
      const listener = (server as unknown as { bound: { tcp: net.Server } }).bound.tcp;
      for (let i = 0; i < 100; i++)
        listener.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' }));
      for (let i = 0; i < 3; i++) listener.emit('error', Object.assign(new Error('accept ENFILE'), { code: 'ENFILE', syscall: 'accept' }));
      assert.equal(server.stats.errors.EMFILE, 100);
      assert.equal(server.stats.errors.ENFILE, 3);
      await probe(server.address().port, false);
    } finally {
      await server.close();
    }
    const lines = captured.lines.filter((l) => l.msg === 'accept failed');
    assert.deepEqual(
      lines.map((l) => [l.code, l.suppressed]),
      [
        ['EMFILE', undefined],
        ['ENFILE', undefined],
        ['EMFILE', 99],
        ['ENFILE', 2],
      ],
    );
  });
});
