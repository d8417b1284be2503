/**
 * src/server/admission.ts on its own, with real sockets on 127.0.0.1: each refusal
 * step, and the one close path giving back a connection's slot, per-source count
 * and `/connections` entry exactly once, whatever ends it (a bad or reset PROXY
 * header, a failed or reset TLS handshake, the native transport's end report).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { RateLimitedLog } from '../../src/log.js';
import { parseCidr, TrustList } from '../../src/proxy/trust.js';
import { Admission, type AdmissionOptions, type AdmittedConnection, type ConnectionHandoff } from '../../src/server/admission.js';
import { TcpDispatch } from '../../src/server/dispatch.js';
import { createStats, type ServerStats } from '../../src/stats.js';
import { loadNativeTcp, NativeTcpTransport } from '../../src/tcp/native.js';
import { loadTlsCredentials } from '../../src/tls/credentials.js';
import { TlsAcceptor } from '../../src/tls/server.js';
import { type CapturedLogger, captureLogger } from '../helpers/logs.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { delay, until, within } from '../helpers/wait.js';
import { makePki } from '../helpers/pki.js';

const HEADER_FROM = (client: string, port = 40000): Buffer => Buffer.from(`PROXY TCP4 ${client} 10.0.0.1 ${port} 12000\r\n`);

interface Admitting {
  port: number;
  admission: Admission;
  stats: ServerStats;
  logs: CapturedLogger;
  /** 'connection closed' lines so far: one per admitted connection that has ended. */
  closedLines(): number;
}

type Options = Partial<Omit<AdmissionOptions, 'trustedProxies'>> & { trusted?: string[] };

/**
 * A listener at 127.0.0.1:0 whose connections go through an Admission, then to
 * `handoff` (default: the real dispatch, streams only).
 */
async function admitting(
  t: TestContext,
  options: Options,
  handoff?: (context: Context) => ConnectionHandoff,
  transport: 'tcp' | 'tls' = 'tcp',
): Promise<Admitting> {
  const logs = captureLogger('debug');
  const stats = createStats();
  const context = { stats, logger: logs.logger, warnings: new RateLimitedLog(logs.logger) };
  const { trusted, ...rest } = options;
  const admission = new Admission(
    {
      ...context,
      maxConnections: 100,
      maxConnectionsPerSource: 0,
      trustedProxies: trusted === undefined ? null : new TrustList(trusted.map((c) => parseCidr(c)!)),
      proxyHeaderTimeoutMs: 5_000,
      ...rest,
    },
    handoff?.(context) ?? streams(context),
  );
  const listener = net.createServer({ allowHalfOpen: true }, (socket) => admission.admit(socket, transport));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    admission.destroyAll();
    await new Promise((resolve) => listener.close(resolve));
  });
  const port = (listener.address() as net.AddressInfo).port;
  return { port, admission, stats, logs, closedLines: () => logs.lines.filter((l) => l.msg === 'connection closed').length };
}

type Context = Pick<AdmissionOptions, 'stats' | 'logger' | 'warnings'>;

function streams(context: Context): TcpDispatch {
  return new TcpDispatch({ ...context, idleTimeoutMs: 0, writeTimeoutMs: 0, tracer: null });
}

/** A raw client; errors (the server's resets) are expected and kept. */
async function connect(port: number): Promise<net.Socket & { ended: Promise<unknown>; error: () => NodeJS.ErrnoException | undefined }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let error: NodeJS.ErrnoException | undefined;
  socket.on('error', (err) => {
    error = err;
  });
  const ended = new Promise((resolve) => socket.once('close', resolve));
  // A refused connection may be reset before the client has seen its connect.
  const connected = new Promise((resolve) => socket.once('connect', resolve));
  await within(5_000, `connect to ${port}`, Promise.race([connected, ended]));
  return Object.assign(socket, { ended, error: () => error });
}

/** Waits until the server has closed `socket` (reset or FIN), failing after 5 s. */
async function refused(socket: net.Socket & { ended: Promise<unknown> }): Promise<void> {
  socket.resume();
  await within(5_000, 'the server to close the connection', socket.ended);
}

/** The slot, per-source count and table entry are all given back: nothing open, and a new client of the same source is served. */
async function allReleased(a: Admitting, expectedClosed: number): Promise<void> {
  await until(() => a.admission.size === 0, 'every connection released');
  assert.equal(a.stats.connectionsOpen, 0, 'connectionsOpen back to 0 (released once each, never twice)');
  assert.equal(a.admission.page({ offset: 0, limit: 10 }).total, 0, 'no /connections entry left');
  // Exactly once each: a second release would log a second line.
  await delay(50);
  assert.equal(a.closedLines(), expectedClosed, "one 'connection closed' line per admitted connection");
}

describe('admission, step by step', () => {
  test('over maxConnections: closed at once, counted, never admitted', async (t) => {
    const a = await admitting(t, { maxConnections: 2 });
    const held = [await connect(a.port), await connect(a.port)];
    await until(() => a.admission.size === 2, 'two admitted');
    const third = await connect(a.port);
    await refused(third);
    assert.equal(a.stats.connectionsRefused, 1);
    assert.equal(a.stats.connectionsTotal, 2);
    assert.ok(a.logs.lines.some((l) => l.msg === 'connection refused: max connections reached' && l.limit === 2));
    for (const socket of held) socket.destroy();
    await allReleased(a, 2);
    // The slots are back: a new client is served.
    assert.equal((await tcpRoundTrip(a.port, 'again')).toString(), 'AGAIN');
  });

  test('PROXY protocol on, peer not trusted: reset, counted as untrusted, never admitted', async (t) => {
    const a = await admitting(t, { trusted: ['10.0.0.0/8'] });
    const client = await connect(a.port);
    await refused(client);
    assert.equal(client.error()?.code, 'ECONNRESET', 'a reset, not a FIN');
    assert.equal(a.stats.proxyRejected.untrusted, 1);
    assert.equal(a.stats.connectionsTotal, 0);
    assert.equal(a.admission.size, 0);
  });

  test('PROXY protocol on, peer already gone (no address): counted as truncated, never admitted', async (t) => {
    const logs = captureLogger('debug');
    const stats = createStats();
    const admission = new Admission(
      {
        stats,
        logger: logs.logger,
        warnings: new RateLimitedLog(logs.logger),
        maxConnections: 10,
        maxConnectionsPerSource: 0,
        trustedProxies: new TrustList([parseCidr('127.0.0.1')!]),
        proxyHeaderTimeoutMs: 1_000,
      },
      streams({ stats, logger: logs.logger, warnings: new RateLimitedLog(logs.logger) }),
    );
    const listener = net.createServer((socket) => {
      // As when the peer resets before we get to it: the socket no longer knows its peer.
      socket.destroy();
      admission.admit(socket, 'tcp');
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => listener.close(resolve)));
    // The server may reset it before the client has seen its connect: wait for the close only.
    const client = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1' });
    client.on('error', () => {});
    await within(5_000, 'the server to close the connection', once(client, 'close'));
    assert.equal(stats.proxyRejected.truncated, 1);
    assert.equal(stats.connectionsTotal, 0);
    assert.equal(admission.size, 0);
  });

  test('over maxConnectionsPerSource: closed at once, counted; the count is given back when a connection closes', async (t) => {
    const a = await admitting(t, { maxConnectionsPerSource: 2 });
    const first = await connect(a.port);
    const second = await connect(a.port);
    await until(() => a.admission.size === 2, 'two admitted');
    await refused(await connect(a.port));
    assert.equal(a.stats.connectionsRefusedPerSource, 1);
    assert.equal(a.stats.connectionsTotal, 2, 'refused before it was counted');
    first.destroy();
    await until(() => a.admission.size === 1, 'the first released');
    // One place is free again, and only one: a double release would free two.
    const third = await connect(a.port);
    await until(() => a.admission.size === 2, 'the third admitted');
    await refused(await connect(a.port));
    assert.equal(a.stats.connectionsRefusedPerSource, 2);
    second.destroy();
    third.destroy();
    await allReleased(a, 3);
  });

  test('with PROXY protocol the per-source limit counts the client the header names, once the header is read', async (t) => {
    const a = await admitting(t, { trusted: ['127.0.0.1'], maxConnectionsPerSource: 1 });
    const first = await connect(a.port);
    first.write(HEADER_FROM('192.0.2.7'));
    await until(() => a.admission.page({ offset: 0, limit: 10 }).connections[0]?.state === 'open', 'the first served');
    // Same balancer, another client: admitted.
    const other = await connect(a.port);
    other.write(HEADER_FROM('192.0.2.8'));
    // Same client again: counted (it was admitted for its header), then refused.
    const again = await connect(a.port);
    again.write(HEADER_FROM('192.0.2.7'));
    await refused(again);
    await until(() => a.stats.proxyAccepted === 3, 'three headers read');
    assert.equal(a.stats.connectionsRefusedPerSource, 1);
    assert.equal(a.stats.connectionsTotal, 3);
    const [view] = a.admission.page({ offset: 0, limit: 10 }).connections;
    assert.deepEqual(view?.client, { address: '192.0.2.7', port: 40000 });
    assert.equal(view?.proxy?.address, '127.0.0.1');
    first.destroy();
    other.destroy();
    await allReleased(a, 3);
    // 192.0.2.7's count was given back: it is served again.
    const back = await connect(a.port);
    back.write(Buffer.concat([HEADER_FROM('192.0.2.7'), Buffer.from('back')]));
    const reply = await within(5_000, 'the reply', once(back, 'data'));
    assert.equal(String(reply[0]), 'BACK');
    back.destroy();
  });
});

describe('one close path: everything given back exactly once', () => {
  test('a bad PROXY header, one reset mid-header, and one that times out', async (t) => {
    const a = await admitting(t, { trusted: ['127.0.0.1'], maxConnections: 3, proxyHeaderTimeoutMs: 1_500 });
    const bad = await connect(a.port);
    const reset = await connect(a.port);
    const silent = await connect(a.port);
    await until(() => a.admission.size === 3, 'all three admitted, waiting for their headers');
    assert.deepEqual(
      a.admission.page({ offset: 0, limit: 10 }).connections.map((c) => c.state),
      ['proxy', 'proxy', 'proxy'],
    );
    bad.write('GET / HTTP/1.1\r\n\r\n');
    reset.write('PROXY TCP4 192.0.2.1 ');
    await delay(20);
    reset.resetAndDestroy();
    await Promise.all([refused(bad), refused(silent)]);
    assert.equal(a.stats.proxyRejected.missing, 1);
    assert.equal(a.stats.proxyRejected.truncated, 1);
    assert.equal(a.stats.proxyRejected.timeout, 1);
    assert.equal(a.stats.proxyAccepted, 0);
    await allReleased(a, 3);
    // Every slot is back (maxConnections 3): three clients are served at once.
    const clients = await Promise.all([0, 1, 2].map(() => connect(a.port)));
    for (const [i, c] of clients.entries()) c.write(HEADER_FROM(`192.0.2.${i + 1}`));
    await until(() => a.stats.proxyAccepted === 3, 'three more served');
    assert.equal(a.stats.connectionsRefused, 0);
    for (const c of clients) c.destroy();
    await allReleased(a, 6);
  });

  test('a TLS handshake that fails (plaintext) and one reset mid-handshake', async (t) => {
    const pki = makePki();
    const credentials = await loadTlsCredentials(pki.server.cert, pki.server.key);
    const a = await admitting(
      t,
      { maxConnectionsPerSource: 2 },
      (context) => {
        const dispatch = streams(context);
        dispatch.tls = new TlsAcceptor({ credentials, handshakeTimeoutMs: 5_000 });
        return dispatch;
      },
      'tls',
    );
    const { port } = a;

    const plaintext = await connect(port);
    plaintext.write('hello, not TLS\r\n');
    const reset = await connect(port);
    // The first bytes of a TLS record (handshake, TLS 1.0 record version), then a reset.
    reset.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80, 0x01]));
    await until(() => a.admission.size === 2, 'both admitted');
    await until(
      () => a.admission.page({ offset: 0, limit: 10 }).connections.filter((c) => c.state === 'handshake').length >= 1,
      'in the handshake',
    );
    await delay(50);
    reset.resetAndDestroy();
    await refused(plaintext);
    await until(
      () => a.stats.tlsHandshakeErrors === 2,
      `both handshakes failed: ${JSON.stringify(a.stats)} ${JSON.stringify(a.logs.lines)}`,
    );
    await allReleased(a, 2);
    // Both per-source places are back.
    const next = [await connect(port), await connect(port)];
    await until(() => a.admission.size === 2, 'two more admitted');
    assert.equal(a.stats.connectionsRefusedPerSource, 0);
    // Reset: a FIN before any handshake byte waits for the handshake timeout (as it always has).
    for (const c of next) c.resetAndDestroy();
    await allReleased(a, 4);
  });

  test("a transport that takes the connection off its socket: the socket's close is not the end, the transport's report is", async (t) => {
    const taken: Array<{ conn: AdmittedConnection; closed: (conn: AdmittedConnection) => void }> = [];
    const a = await admitting(t, { maxConnectionsPerSource: 2 }, () => ({
      serve(conn, socket, closed) {
        conn.engine = 'native';
        socket.destroy();
        taken.push({ conn, closed });
        return true;
      },
    }));
    const clients = [await connect(a.port), await connect(a.port)];
    await Promise.all(clients.map((c) => refused(c)));
    await delay(50);
    assert.equal(a.admission.size, 2, 'still open after their sockets closed');
    assert.equal(a.stats.connectionsOpen, 2);
    assert.equal(a.closedLines(), 0);
    // The first ends; a second report of the same end changes nothing.
    taken[0]!.closed(taken[0]!.conn);
    taken[0]!.closed(taken[0]!.conn);
    assert.equal(a.admission.size, 1);
    assert.equal(a.stats.connectionsOpen, 1);
    assert.equal(a.closedLines(), 1);
    // One per-source place is free, not two.
    const third = await connect(a.port);
    await refused(third);
    await until(() => a.admission.size === 2, 'the third admitted');
    await refused(await connect(a.port));
    assert.equal(a.stats.connectionsRefusedPerSource, 1);
    for (const { conn, closed } of taken.slice(1)) closed(conn);
    await allReleased(a, 3);
  });

  test('natively served connections (when the addon is built) are released when the client goes, once', async (t) => {
    const binding = loadNativeTcp();
    if (binding === null) {
      t.skip('the native TCP transport is not built here');
      return;
    }
    const native = new NativeTcpTransport(binding, { idleTimeoutMs: 0, writeTimeoutMs: 0 });
    t.after(() => native.close());
    const a = await admitting(t, { maxConnectionsPerSource: 1 }, (context) => {
      const dispatch = streams(context);
      dispatch.native = native;
      return dispatch;
    });
    const client = await connect(a.port);
    client.write('native');
    const reply = await within(5_000, 'the reply', once(client, 'data'));
    assert.equal(String(reply[0]), 'NATIVE');
    assert.equal(a.admission.page({ offset: 0, limit: 1 }).connections[0]?.engine, 'native');
    assert.equal(native.size, 1);
    await delay(50);
    assert.equal(a.admission.size, 1, 'the destroyed socket did not end the connection');
    client.end();
    await until(() => native.size === 0, 'the addon to report the end');
    await allReleased(a, 1);
    assert.equal((await tcpRoundTrip(a.port, 'again')).toString(), 'AGAIN', 'the per-source place is back');
  });

  test('destroyAll closes every connection in every state; whenEmpty resolves once all are released', async (t) => {
    const a = await admitting(t, { trusted: ['127.0.0.1'] });
    const waiting = await connect(a.port);
    waiting.write('PROXY TCP4 192.0.2.'); // half a header: the server's closing cuts it short
    const served = await connect(a.port);
    served.write(HEADER_FROM('192.0.2.9'));
    await until(() => a.stats.proxyAccepted === 1 && a.admission.size === 2, 'one waiting for its header, one served');
    const empty = a.admission.whenEmpty();
    a.admission.destroyAll();
    await within(5_000, 'whenEmpty', empty);
    await Promise.all([refused(waiting), refused(served)]);
    await allReleased(a, 2);
    // The header the server cut short is not the balancer's fault: not counted, not logged.
    assert.ok(
      Object.values(a.stats.proxyRejected).every((n) => n === 0),
      JSON.stringify(a.stats.proxyRejected),
    );
    assert.equal(a.logs.lines.filter((l) => l.msg === 'PROXY header rejected; closing').length, 0);
    await within(1_000, 'whenEmpty with nothing open', a.admission.whenEmpty());
  });
});
