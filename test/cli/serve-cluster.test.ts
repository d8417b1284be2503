// `upcase serve --workers 2 --metrics-port 0` as a user runs it: one real cluster, checked step by step
// (traffic totals in /metrics, kill -9 of a worker, SIGTERM under load, the logs).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { scrape, status } from '../helpers/operator.js';
import { pool, tcpRoundTrip, udpRoundTrip } from '../helpers/roundtrip.js';
import { type ServeProcess, spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

// Distinctive payload text: it must never show up in the logs, in either case.
const MARK = 'zebra-payload-8675309';

describe('serve --workers 2', () => {
  let p: ServeProcess;
  let port: number;
  let metrics: string;
  const DRAIN = 3; // seconds

  before(async () => {
    p = spawnServe(['--workers', '2', '--metrics-port', '0', '--log-level', 'debug', '--drain-timeout', String(DRAIN)]);
    const s = await p.ready();
    port = s.port;
    metrics = s.metrics!;
    assert.equal(s.transports, 'tcp+udp');
    assert.ok(metrics.startsWith('http://127.0.0.1:'), metrics);
  });

  after(async () => {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.kill();
      await p.exited;
    }
  });

  it('is live and ready, with two workers', async () => {
    assert.equal(await status(metrics, '/healthz'), 200);
    assert.equal(await status(metrics, '/readyz'), 200);
    const m = await scrape(metrics);
    assert.equal(m.get('upcase_workers'), 2);
    // The ready line comes once, from the primary, and with --port 0 every worker got that one port.
    assert.equal(p.stdoutLines.filter((l) => l.startsWith('The server is ready')).length, 1);
    const workerLines = (): Array<Record<string, unknown>> => p.logs().filter((e) => e.msg === 'listening');
    // Worker logs flush asynchronously and may trail the primary's ready line.
    await until(() => workerLines().length === 2, 'both workers to log listening');
    const listening = workerLines();
    assert.deepEqual(
      listening.map((e) => [e.port, e.transports]),
      [
        [port, 'tcp+udp'],
        [port, 'tcp+udp'],
      ],
    );
  });

  it('shows 100 TCP connections and 100 UDP datagrams as totals across both workers', async () => {
    const payloads = Array.from({ length: 100 }, (_, i) => `${MARK} tcp ${i} straße`);
    const replies = await pool(payloads, 10, (text) => tcpRoundTrip(port, text));
    replies.forEach((r, i) => {
      assert.equal(r.toString(), upcase(Buffer.from(payloads[i])).toString());
    });
    const datagrams = Array.from({ length: 100 }, (_, i) => `${MARK} udp ${i}`);
    for (const d of datagrams) assert.equal(String(await udpRoundTrip(port, d)), d.toUpperCase());

    const tcpIn = payloads.reduce((n, s) => n + Buffer.byteLength(s), 0);
    const tcpOut = replies.reduce((n, r) => n + r.length, 0);
    const udpBytes = datagrams.reduce((n, s) => n + Buffer.byteLength(s), 0);
    // Connections close on the server a moment after the client sees its reply.
    let m = await scrape(metrics);
    await until(async () => (m = await scrape(metrics)).get('upcase_connections_open') === 0, 'connections_open to drop to 0');
    assert.equal(m.get('upcase_connections_total'), 100);
    assert.equal(m.get('upcase_bytes_received_total{transport="tcp"}'), tcpIn);
    assert.equal(m.get('upcase_bytes_sent_total{transport="tcp"}'), tcpOut);
    assert.equal(m.get('upcase_datagrams_received_total'), 100);
    assert.equal(m.get('upcase_datagrams_sent_total'), 100);
    assert.equal(m.get('upcase_bytes_received_total{transport="udp"}'), udpBytes);
    assert.equal(m.get('upcase_bytes_sent_total{transport="udp"}'), udpBytes);
    assert.equal(m.get('upcase_udp_drops_total{reason="rate_limited"}'), 0);
    assert.ok((m.get('process_cpu_seconds_total') ?? 0) > 0, 'process metrics are there');

    // Both workers took TCP connections (cluster round-robin): per-connection debug lines carry each worker's pid.
    const opened = (): Array<Record<string, unknown>> => p.logs().filter((e) => e.msg === 'connection open');
    await until(() => opened().length === 100, 'the 100 connection log lines');
    const pids = new Set(opened().map((e) => e.pid));
    assert.equal(pids.size, 2, `connections were served by ${pids.size} worker(s)`);
  });

  it('restarts a worker killed with SIGKILL, and keeps serving', async () => {
    const victim = await p.log((e) => e.msg === 'worker listening');
    process.kill(victim.workerPid as number, 'SIGKILL');
    const restarted = await p.log((e) => e.msg === 'worker listening' && e.worker === victim.worker && e.workerPid !== victim.workerPid);
    assert.notEqual(restarted.workerPid, victim.workerPid);
    const died = p.logs().find((e) => e.msg === 'worker died; restarting');
    assert.equal(died?.signal, 'SIGKILL');
    assert.equal(died?.restartInMs, 100);

    for (let i = 0; i < 6; i++) assert.equal((await tcpRoundTrip(port, `after restart ${i}`)).toString(), `AFTER RESTART ${i}`);
    assert.equal(String(await udpRoundTrip(port, 'udp after restart')), 'UDP AFTER RESTART');
    const m = await scrape(metrics);
    assert.equal(m.get('upcase_worker_restarts_total'), 1);
    assert.equal(m.get('upcase_workers'), 2);
    assert.equal(await status(metrics, '/readyz'), 200);
  });

  it('drains on SIGTERM under load: readiness false first, in-flight connections intact, exit 0', async () => {
    // Side loop: /readyz and /healthz as a load balancer would poll them, until the endpoint goes away.
    const readiness: Array<{ at: number; ready: number; health: number }> = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          readiness.push({ at: Date.now(), ready: await status(metrics, '/readyz'), health: await status(metrics, '/healthz') });
        } catch {
          // The endpoint closes as the process exits.
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // In-flight: 20 connections, each sending 10 chunks 100 ms apart, then half-closing.
    const inflight = Array.from({ length: 20 }, (_, c) =>
      sendSlowly(
        port,
        Array.from({ length: 10 }, (_, i) => `${MARK} conn ${c} chunk ${i}; `),
      ),
    );
    await Promise.all(inflight.map((f) => f.firstReply));
    // An idle connection: it never finishes, so the drain timeout must end it.
    const idle = net.connect({ host: '127.0.0.1', port });
    await new Promise((r) => idle.once('connect', r));
    const idleClosed = new Promise<number>((resolve) => idle.on('close', () => resolve(Date.now())));
    idle.on('error', () => {});
    // Steady load of short conversations: each one either completes intact or fails loudly; none is cut short quietly.
    let steady = true;
    const steadyResults: Array<'ok' | 'refused'> = [];
    const steadyLoop = (async () => {
      for (let i = 0; steady && i < 2000; i++) {
        const text = `steady ${i} ${MARK}`;
        try {
          const reply = await tcpRoundTrip(port, text);
          // Closed before any byte was served (a connection still queued when the listener
          // closed) counts as refused; a reply cut short would be a lost-bytes bug.
          if (reply.length === 0) throw new Error('closed unserved');
          assert.equal(reply.toString(), text.toUpperCase());
          steadyResults.push('ok');
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          steadyResults.push('refused');
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    })();

    await new Promise((r) => setTimeout(r, 150));
    const signalledAt = Date.now();
    p.signal('SIGTERM');

    const results = await Promise.all(inflight.map((f) => f.done));
    results.forEach((r) => {
      assert.equal(r.received, r.expected, 'an in-flight connection lost bytes');
    });
    const exit = await p.exitWithin(20_000);
    steady = false;
    polling = false;
    await Promise.all([steadyLoop, poller]);

    assert.deepEqual(exit, { code: 0, signal: null });
    const before = readiness.filter((s) => s.at < signalledAt);
    const afterSignal = readiness.filter((s) => s.at > signalledAt);
    assert.ok(before.length > 0 && before.every((s) => s.ready === 200), 'ready before the signal');
    assert.ok(
      afterSignal.some((s) => s.ready === 503),
      '/readyz turned 503 during the drain',
    );
    assert.ok(
      afterSignal.every((s) => s.health === 200),
      '/healthz stays 200 while the process lives',
    );
    // Once readiness is false it stays false.
    const first503 = readiness.findIndex((s) => s.ready === 503);
    assert.ok(readiness.slice(first503).every((s) => s.ready === 503));
    assert.ok(steadyResults.includes('ok'), 'steady load got through before the signal');
    const idleClosedAt = await idleClosed;
    assert.ok(idleClosedAt - signalledAt >= DRAIN * 1000 - 100, 'the idle connection was kept until the drain timeout');
    assert.ok(p.logs().some((e) => e.msg === 'drain timeout: closing open connections' && e.connections === 1));
  });

  it('logged JSON lines only, with fields, and never the payload', () => {
    const entries = p.logs(); // throws on any line that is not JSON
    assert.ok(entries.length > 200);
    for (const line of p.stderrLines) assert.ok(!line.toLowerCase().includes(MARK), `payload in log line: ${line}`);
    const open = entries.find((e) => e.msg === 'connection open');
    assert.equal(open?.transport, 'tcp');
    assert.equal(open?.remoteAddress, '127.0.0.1');
    assert.equal(open?.level, 20); // debug
    const listening = entries.find((e) => e.msg === 'listening');
    assert.equal(listening?.transports, 'tcp+udp');
    assert.ok(entries.some((e) => e.msg?.toString().startsWith('shutting down') && e.signal === 'SIGTERM'));
    assert.equal(entries.filter((e) => e.msg === 'worker exited').length, 2);
  });
});

/** A connection that sends `chunks` 100 ms apart, then half-closes; resolves what came back vs what was owed. */
function sendSlowly(port: number, chunks: string[]): { firstReply: Promise<void>; done: Promise<{ received: string; expected: string }> } {
  const socket = net.connect({ host: '127.0.0.1', port });
  const received: Buffer[] = [];
  let gotFirst: () => void;
  const firstReply = new Promise<void>((r) => (gotFirst = r));
  const done = new Promise<{ received: string; expected: string }>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      received.push(c);
      gotFirst();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ received: Buffer.concat(received).toString(), expected: chunks.join('').toUpperCase() }));
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        socket.write(chunk);
        await new Promise((r) => setTimeout(r, 100));
      }
      socket.end();
    });
  });
  return { firstReply, done };
}
