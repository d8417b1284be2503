// The process modes and their signals (src/server/process.ts, src/server/signals.ts), called directly: the
// signals come from an EventEmitter and the exit a second signal asks for is recorded, so nothing is spawned.
// The spawned `upcase serve` is covered by test/cli/serve-*.test.ts and test/adversarial/sighup.test.ts.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { copyFileSync, mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { deserializeError, ListenError } from '../../src/errors.js';
import { ClusterPrimary, type PrimaryChannel } from '../../src/server/cluster.js';
import type { ToPrimary, ToWorker } from '../../src/server/cluster/ipc.js';
import { servePrimary, serveSingle, serveWorker } from '../../src/server/process.js';
import { type ServerAddress, UpcaseServer } from '../../src/server/server.js';
import type { ProcessHost } from '../../src/server/signals.js';
import { captureLogger } from '../helpers/logs.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { TcpPeer, tcpRoundTrip } from '../helpers/roundtrip.js';
import { until, within } from '../helpers/wait.js';
import { FakeCluster } from './cluster/fake-cluster.js';

/** A process whose signals the test sends, and whose exit only records the status. */
class FakeProcess implements ProcessHost {
  readonly signals = new EventEmitter();
  readonly exits: number[] = [];
  exit(status: number): void {
    this.exits.push(status);
  }
  send(signal: NodeJS.Signals): void {
    this.signals.emit(signal, signal);
  }
}

/** A single process on 127.0.0.1, port 0; resolves `listening` with its address. */
function single(options: ConstructorParameters<typeof UpcaseServer>[0] = {}, withMetrics = false) {
  const log = captureLogger('info');
  const server = new UpcaseServer({ host: '127.0.0.1', port: 0, drainTimeout: 10, ...options, logger: log.logger });
  const host = new FakeProcess();
  const told: string[] = [];
  let metricsUrl = '';
  let onListening: (address: ServerAddress) => void = () => {};
  const listening = new Promise<ServerAddress>((resolve) => {
    onListening = (address) => {
      told.push('listening');
      resolve(address);
    };
  });
  const status = serveSingle(server, {
    host,
    metrics: withMetrics ? { port: 0, host: '127.0.0.1' } : undefined,
    onMetrics: (metrics) => {
      told.push('metrics');
      metricsUrl = `http://127.0.0.1:${metrics.address()!.port}`;
    },
    onListening,
  });
  const msgs = (): unknown[] => log.lines.map((l) => l.msg);
  return { server, host, listening, status, log, msgs, told, metricsUrl: () => metricsUrl };
}

const statusOf = async (url: string): Promise<number> => (await fetch(url)).status;

describe('serveSingle: SIGINT and SIGTERM', () => {
  it('SIGTERM drains: not ready, no new connections, the open one finishes intact, then it resolves 0', async (t) => {
    const run = single({}, true);
    t.after(() => run.server.close());
    const { port } = await run.listening;
    assert.deepEqual(run.told, ['metrics', 'listening'], 'the metrics endpoint is told first (its URL is printed before the ready line)');
    assert.equal(await statusOf(`${run.metricsUrl()}/readyz`), 200);
    const open = await TcpPeer.connect(port);
    t.after(() => open.destroy());
    await open.write('before, ');
    await open.waitForBytes(8);

    run.host.send('SIGTERM');
    assert.equal(run.server.state, 'draining');
    await until(() => run.msgs().includes('shutting down: not ready, no new connections, draining'), 'the drain to start');
    assert.equal(await statusOf(`${run.metricsUrl()}/readyz`), 503);
    assert.equal(await statusOf(`${run.metricsUrl()}/healthz`), 200);
    await assert.rejects(tcpRoundTrip(port, 'new'), { code: 'ECONNREFUSED' });
    open.socket.end('after: straße');
    assert.equal((await open.waitForClose()).toString(), 'BEFORE, AFTER: STRASSE');
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.equal(run.server.state, 'closed');
    assert.deepEqual(run.host.exits, []);
    assert.ok(run.msgs().indexOf('closed') < run.msgs().indexOf('exiting'));
    await assert.rejects(fetch(`${run.metricsUrl()}/healthz`), 'the metrics endpoint closes after the drain');
  });

  it('a second signal asks the process to exit with status 1 at once, and the run then resolves 1', async (t) => {
    const run = single();
    t.after(() => run.server.close());
    const { port } = await run.listening;
    const open = await TcpPeer.connect(port);
    t.after(() => open.destroy());
    await open.write('x');
    await open.waitForBytes(1);

    run.host.send('SIGINT');
    assert.deepEqual(run.host.exits, [], 'the first signal drains');
    run.host.send('SIGTERM');
    assert.deepEqual(run.host.exits, [1]);
    assert.ok(run.msgs().includes('second signal: exiting now'));
    // This process does not exit (the test's exit only records): the drain goes on until the client leaves.
    open.destroy();
    assert.equal(await within(10_000, 'the run to end', run.status), 1);
  });

  it('a signal during the start is a clean stop: status 0, the server closed, no ready line', async () => {
    const run = single();
    run.host.send('SIGTERM');
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.equal(run.server.state, 'closed');
    assert.equal(await Promise.race([run.listening.then(() => 'listened'), Promise.resolve('not')]), 'not');
  });

  it('a failed start rejects with the error and takes its handlers away', async (t) => {
    const taken = new UpcaseServer({ host: '127.0.0.1', port: 0 });
    const { port } = await taken.listen();
    t.after(() => taken.close());
    const run = single({ port });
    await assert.rejects(run.status, { code: 'UPCASE_ERR_LISTEN' });
    assert.equal(run.host.signals.listenerCount('SIGTERM'), 0);
    assert.equal(run.host.signals.listenerCount('SIGINT'), 0);
    // SIGHUP stays handled for the process's whole life: its default action would end it.
    assert.equal(run.host.signals.listenerCount('SIGHUP'), 1);
  });
});

describe('serveSingle: SIGHUP', () => {
  let pki: TestPki;
  let cert: string;
  let key: string;

  before(() => {
    pki = makePki();
    const live = pki.path('process-live');
    mkdirSync(live, { recursive: true });
    cert = `${live}/cert.pem`;
    key = `${live}/key.pem`;
  });
  after(() => pki.remove());

  const serial = async (tlsPort: number): Promise<string> => {
    const c = await TcpPeer.tls(tlsPort, { ca: pki.ca });
    try {
      return c.socket.getPeerCertificate().serialNumber;
    } finally {
      c.socket.destroy();
    }
  };

  it('during the start: owed, and done once the server listens, with the files as they are then', async (t) => {
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    const run = single({ tlsPort: 0, tlsCert: cert, tlsKey: key });
    t.after(() => run.server.close());
    // The renewal lands after the server read the files (it reads them as listen() begins) and before it
    // listens: the listener registered first runs first, before the reload the SIGHUP is owed.
    run.server.once('listening', () => {
      copyFileSync(pki.server2.cert, cert);
      copyFileSync(pki.server2.key, key);
    });
    run.host.send('SIGHUP');
    assert.equal(run.server.state, 'new');
    run.host.send('SIGHUP');
    const { tlsPort } = await run.listening;
    await until(() => run.msgs().includes('tls certificate reloaded'), 'the owed reload');
    assert.equal(await serial(tlsPort!), '2002');
    assert.equal(run.msgs().filter((m) => m === 'tls certificate reloaded').length, 1, 'two SIGHUPs during the start owe one reload');
    assert.deepEqual(run.host.exits, []);
  });

  it('while listening: reloads; a failed reload keeps the old certificate; during the drain: logged only', async (t) => {
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    // A short drain: the TLS connections the test made and closed may still be open on the server (their
    // handshake not seen to end), and the drain would wait for them.
    const run = single({ tlsPort: 0, tlsCert: cert, tlsKey: key, drainTimeout: 1 });
    t.after(() => run.server.close());
    const { tlsPort, port } = await run.listening;
    assert.equal(await serial(tlsPort!), '1001');

    copyFileSync(pki.server2.key, key); // the old certificate with another key: unusable
    run.host.send('SIGHUP');
    await until(() => run.msgs().some((m) => String(m).startsWith('tls reload failed, keeping the old certificate')), 'the failure');
    assert.equal(await serial(tlsPort!), '1001');
    copyFileSync(pki.server2.cert, cert);
    run.host.send('SIGHUP');
    await until(() => run.msgs().includes('tls certificate reloaded'), 'the reload');
    assert.equal(await serial(tlsPort!), '2002');

    const open = await TcpPeer.connect(port);
    t.after(() => open.destroy());
    await open.write('x');
    await open.waitForBytes(1);
    run.host.send('SIGTERM');
    run.host.send('SIGHUP');
    assert.ok(run.msgs().includes('SIGHUP: not reloading while the server is not listening'));
    assert.equal(run.msgs().filter((m) => m === 'reloading tls certificate').length, 2);
    open.destroy();
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.deepEqual(run.host.exits, []);
  });

  it('without TLS: logged, and nothing else happens', async (t) => {
    const run = single();
    t.after(() => run.server.close());
    const { port } = await run.listening;
    run.host.send('SIGHUP');
    assert.ok(run.msgs().includes('SIGHUP: nothing to reload (no TLS)'));
    assert.equal(run.server.state, 'listening');
    assert.equal((await tcpRoundTrip(port, 'hup')).toString(), 'HUP');
    assert.deepEqual(run.host.exits, []);
  });
});

describe('servePrimary (workers stood in for)', () => {
  /** A primary over a fake cluster; its workers listen when the test says so. */
  function primaryRun() {
    const log = captureLogger('info');
    const cluster = new FakeCluster();
    const primary = new ClusterPrimary({
      workers: 2,
      server: { host: '127.0.0.1', port: 0, drainTimeout: 1 },
      logger: log.logger,
      cluster,
      processMetrics: false,
      shutdownGrace: 60,
    });
    const host = new FakeProcess();
    let listened = false;
    const status = servePrimary(primary, {
      host,
      onListening: () => {
        listened = true;
      },
    });
    return { primary, cluster, host, status, log, listened: () => listened };
  }

  it('SIGTERM while the workers start: they are told to drain, and the run resolves 0', async () => {
    const run = primaryRun();
    await until(() => run.cluster.forked.length === 2, 'two workers forked');
    run.cluster.worker(1).listening(Number(run.cluster.worker(1).env.UPCASE_CLUSTER_PORT));
    run.host.send('SIGTERM');
    for (const w of run.cluster.forked) {
      assert.deepEqual(w.sent, [{ upcase: 'shutdown' }]);
      w.exit(0);
    }
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.equal(run.listened(), false);
    assert.equal(run.primary.state, 'closed');
  });

  it('a second signal kills the workers and asks for exit status 1', async () => {
    const run = primaryRun();
    await until(() => run.cluster.forked.length === 2, 'two workers forked');
    for (const w of run.cluster.forked) w.listening(Number(w.env.UPCASE_CLUSTER_PORT));
    await until(run.listened, 'the cluster to listen');
    run.host.send('SIGINT');
    assert.equal(run.primary.ready, false);
    run.host.send('SIGINT');
    assert.deepEqual(run.host.exits, [1]);
    for (const w of run.cluster.forked) assert.deepEqual(w.signals, ['SIGKILL']);
    assert.equal(await within(10_000, 'the run to end', run.status), 1);
  });

  it('SIGHUP goes to each worker that listens, and to one still starting once it listens', async () => {
    const run = primaryRun();
    await until(() => run.cluster.forked.length === 2, 'two workers forked');
    const [one, two] = run.cluster.forked as [NonNullable<(typeof run.cluster.forked)[0]>, NonNullable<(typeof run.cluster.forked)[0]>];
    one.listening(Number(one.env.UPCASE_CLUSTER_PORT));
    run.host.send('SIGHUP');
    assert.deepEqual(one.signals, ['SIGHUP']);
    assert.deepEqual(two.signals, [], 'a worker still starting could die of it');
    run.host.send('SIGHUP');
    two.listening(Number(two.env.UPCASE_CLUSTER_PORT));
    assert.deepEqual(two.signals, ['SIGHUP'], 'owed once, however many came');
    assert.deepEqual(one.signals, ['SIGHUP', 'SIGHUP']);
    await until(run.listened, 'the cluster to listen');
    assert.deepEqual(
      run.log.lines.filter((l) => l.signal === 'SIGHUP').map((l) => [l.msg, l.workers]),
      [
        ['SIGHUP: nothing to reload (no TLS)', 2],
        ['SIGHUP: nothing to reload (no TLS)', 2],
      ],
    );
    run.host.send('SIGTERM');
    for (const w of run.cluster.forked) w.exit(0);
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.deepEqual(run.host.exits, []);
  });
});

/** The worker's end of a channel whose primary is the test. */
class FakeChannel extends EventEmitter implements PrimaryChannel {
  readonly sent: ToPrimary[] = [];
  disconnected = false;
  send(message: ToPrimary): void {
    if (!this.disconnected) this.sent.push(message);
  }
  disconnect(): void {
    this.disconnected = true;
  }
  /** What the primary says. */
  say(message: ToWorker): void {
    this.emit('message', message);
  }
  said(): string[] {
    return this.sent.map((m) => m.upcase);
  }
}

describe('serveWorker (the primary stood in for)', () => {
  function worker(options: ConstructorParameters<typeof UpcaseServer>[0] = {}) {
    const log = captureLogger('debug');
    const server = new UpcaseServer({ host: '127.0.0.1', port: 0, drainTimeout: 10, ...options, logger: log.logger });
    const host = new FakeProcess();
    const channel = new FakeChannel();
    const status = serveWorker(server, { host, channel });
    return { server, host, channel, status, log };
  }

  it('tells the primary it listens; a signal drains it, a second one does not force (the primary does)', async (t) => {
    const run = worker();
    t.after(() => run.server.close());
    await until(() => run.channel.said().includes('listening'), 'the listening message');
    const { port } = run.server.address();
    const open = await TcpPeer.connect(port);
    t.after(() => open.destroy());
    await open.write('x');
    await open.waitForBytes(1);

    run.host.send('SIGINT');
    assert.equal(run.server.state, 'draining');
    assert.deepEqual(run.channel.said(), ['listening', 'draining']);
    run.host.send('SIGTERM');
    assert.deepEqual(run.host.exits, []);
    open.socket.end('y');
    assert.equal((await open.waitForClose()).toString(), 'XY');
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.equal(run.channel.disconnected, true);
    assert.equal(run.host.signals.listenerCount('SIGTERM'), 0);
  });

  it("answers the primary's metrics and connections requests, and drains on its shutdown request", async () => {
    const run = worker();
    await until(() => run.channel.said().includes('listening'), 'the listening message');
    assert.equal((await tcpRoundTrip(run.server.address().port, 'counted')).toString(), 'COUNTED');
    run.channel.say({ upcase: 'metrics', id: 7 });
    run.channel.say({ upcase: 'connections', id: 8, limit: 10 });
    await until(() => run.channel.sent.some((m) => m.upcase === 'metrics'), 'the metrics answer');
    const metrics = run.channel.sent.find((m) => m.upcase === 'metrics');
    assert.ok(metrics?.upcase === 'metrics' && metrics.id === 7);
    const total = metrics.metrics.find((m) => m.name === 'upcase_connections_total');
    assert.equal(total?.values[0]?.value, 1);
    const connections = run.channel.sent.find((m) => m.upcase === 'connections');
    assert.ok(connections?.upcase === 'connections' && connections.id === 8 && connections.page.total === 0);
    run.channel.say({ upcase: 'shutdown' });
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.equal(run.server.state, 'closed');
  });

  it('a shutdown request during the start: it listens, tells the primary, then drains', async () => {
    const run = worker();
    run.channel.say({ upcase: 'shutdown' });
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.deepEqual(run.channel.said(), ['listening', 'draining']);
  });

  it('a signal during the start: it listens, tells the primary, then drains (the signal does not kill it)', async () => {
    const run = worker();
    assert.ok(run.host.signals.listenerCount('SIGINT') > 0, 'no SIGINT handler while the worker starts');
    run.host.send('SIGINT');
    assert.equal(await within(10_000, 'the run to end', run.status), 0);
    assert.deepEqual(run.channel.said(), ['listening', 'draining']);
    assert.equal(run.host.signals.listenerCount('SIGINT'), 0);
  });

  it('a worker that cannot listen sends the primary its error, class and code included, and resolves 1', async (t) => {
    const taken = new UpcaseServer({ host: '127.0.0.1', port: 0 });
    const { port } = await taken.listen();
    t.after(() => taken.close());
    const run = worker({ port });
    t.after(() => run.server.close());
    assert.equal(await within(10_000, 'the run to end', run.status), 1);
    const [sent] = run.channel.sent;
    assert.ok(sent?.upcase === 'listen-error');
    const error = deserializeError(sent.error);
    assert.ok(error instanceof ListenError, `got ${error.name}`);
    assert.equal(error.port, port);
    assert.equal(run.channel.disconnected, true);
  });
});
