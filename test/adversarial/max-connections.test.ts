/**
 * `maxConnections` N with N+100 attempts held open at once: exactly N served,
 * 100 closed at once, counted, and logged rate-limited.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import { startServer } from '../../src/server/server.js';
import { probe } from '../helpers/roundtrip.js';
import { startServe } from '../helpers/serve.js';
import { delay, until } from '../helpers/wait.js';
import { captureLogger } from '../helpers/logs.js';

interface Attempt {
  socket: net.Socket;
  served: boolean;
  closed: boolean;
  /** ms from connect to close, for refused ones. */
  lifetime: number;
}

/** Opens `count` connections at once; each says hello and stays open unless the server closes it. */
function attempt(port: number, count: number): Attempt[] {
  return Array.from({ length: count }, () => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const a: Attempt = { socket, served: false, closed: false, lifetime: -1 };
    let connectedAt = 0;
    socket.on('error', () => {}); // a refused one may see ECONNRESET
    socket.on('connect', () => {
      connectedAt = performance.now();
      socket.write('hello');
    });
    socket.on('data', (d: Buffer) => {
      if (d.toString() === 'HELLO') a.served = true;
    });
    socket.on('close', () => {
      a.closed = true;
      a.lifetime = performance.now() - connectedAt;
    });
    return a;
  });
}

const refusedLines = (lines: Array<Record<string, unknown>>) =>
  lines.filter((l) => l.msg === 'connection refused: max connections reached');
/** A line without `suppressed` stands for itself; a summary line for the warnings it swallowed. */
const accounted = (lines: Array<Record<string, unknown>>) => lines.reduce((sum, l) => sum + ((l.suppressed as number | undefined) ?? 1), 0);

describe('max connections', () => {
  test('library: N + 100 attempts → exactly N served, 100 refused at once, counted, logged rate-limited', async () => {
    const N = 40;
    const captured = captureLogger('info');
    const server = await startServer({ host: '127.0.0.1', port: 0, udp: false, maxConnections: N, logger: captured.logger });
    const attempts = attempt(server.address().port, N + 100);
    try {
      const served = () => attempts.filter((a) => a.served).length;
      const refused = () => attempts.filter((a) => a.closed && !a.served).length;
      await until(() => served() === N && refused() === 100, `${N} served and 100 refused (now ${served()} and ${refused()})`, 15_000);
      await delay(300); // nothing changes after a while: the served stay served and open
      assert.equal(served(), N);
      assert.equal(refused(), 100);
      assert.equal(attempts.filter((a) => a.served && a.closed).length, 0);
      assert.equal(server.connectionCount, N);
      assert.equal(server.stats.connectionsRefused, 100);
      assert.equal(server.stats.connectionsTotal, N);
      for (const a of attempts.filter((x) => !x.served)) assert.ok(a.lifetime < 5000, `a refused connection lived ${a.lifetime} ms`);
      // One line at once, not a hundred.
      assert.equal(refusedLines(captured.lines).length, 1);
      assert.equal(refusedLines(captured.lines)[0]!.limit, N);

      // A freed slot is served again.
      attempts.find((a) => a.served)!.socket.destroy();
      await until(() => server.connectionCount === N - 1, 'the slot to free', 5000);
      await probe(server.address().port, false);
    } finally {
      for (const a of attempts) a.socket.destroy();
      await server.close();
    }
    // Closing reports what the window swallowed: every refusal is accounted for.
    const lines = refusedLines(captured.lines);
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.suppressed, 99);
    assert.equal(accounted(lines), 100);
  });

  test('CLI: --max-connections 5 with 105 attempts; the log shows the refusals rate-limited with a suppressed count', async () => {
    const server = await startServe(['--max-connections', '5', '--drain-timeout', '0']);
    const attempts = attempt(server.port, 105);
    try {
      const served = () => attempts.filter((a) => a.served).length;
      const refused = () => attempts.filter((a) => a.closed && !a.served).length;
      await until(() => served() === 5 && refused() === 100, `5 served and 100 refused (now ${served()} and ${refused()})`, 15_000);
    } finally {
      for (const a of attempts) a.socket.destroy();
    }
    assert.deepEqual(await server.stop(), { code: 0, signal: null });
    const lines = refusedLines(server.logs());
    assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} log lines for 100 refusals`);
    assert.equal(accounted(lines), 100);
    assert.ok(lines.some((l) => typeof l.suppressed === 'number' && l.suppressed > 0));
    assert.equal(lines[0]!.level, 40);
    assert.equal(lines[0]!.limit, 5);
  });
});
