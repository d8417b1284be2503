import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { tcpRequest } from '../../src/client/tcp.js';
import { upcase } from '../../src/codec/upcase.js';
import { UpcaseServer } from '../../src/server/server.js';
import { MiB, TcpPeer, tcpRoundTrip, tlsRoundTrip } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { delay, until, within } from '../helpers/wait.js';
import { makePki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

/** The server options for TLS with the good certificate on a free port. */
const withTls = (extra: Record<string, unknown> = {}) => ({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0, ...extra });

/** Text mixing ASCII, 2/3/4-byte characters and characters whose uppercase is longer. */
function mixedUtf8(n: number): Buffer {
  const piece = Buffer.from('hello straße ﬃ ΐ привет 中文 𐐨😀 ', 'utf8');
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += piece.length) piece.copy(out, i);
  return out;
}

describe('TLS listener', () => {
  test('runs on its own port beside TCP and UDP; address() reports it', async (t) => {
    const server = await serverFor(t, withTls());
    const address = server.address();
    assert.deepEqual(address.transports, ['tcp', 'udp', 'tls']);
    assert.equal(typeof address.tlsPort, 'number');
    assert.notEqual(address.tlsPort, address.port);
    // Plain TCP still answers on its own port.
    assert.equal((await tcpRoundTrip(address.port, 'plain')).toString(), 'PLAIN');
  });

  test('TLS alone (no TCP, no UDP): port is the TLS port', async (t) => {
    const server = await serverFor(t, withTls({ tcp: false, udp: false }));
    const address = server.address();
    assert.deepEqual(address.transports, ['tls']);
    assert.equal(address.port, address.tlsPort);
    assert.equal((await tlsRoundTrip(address.tlsPort!, 'only tls', { ca: pki.ca })).toString(), 'ONLY TLS');
  });

  test('round trip through a verified connection: short, then 8 MiB of mixed UTF-8; counted as TLS', async (t) => {
    const server = await serverFor(t, withTls());
    const port = server.address().tlsPort!;
    assert.equal((await tlsRoundTrip(port, 'héllo wörld', { ca: pki.ca })).toString(), 'HÉLLO WÖRLD');
    const big = mixedUtf8(8 * MiB);
    const out = await tlsRoundTrip(port, big, { ca: pki.ca });
    assert.ok(out.equals(upcase(big)), 'reply differs from upcase(input)');
    const { stats } = server;
    assert.equal(stats.tlsHandshakes, 2);
    assert.equal(stats.tlsBytesIn, Buffer.byteLength('héllo wörld') + big.length);
    assert.equal(stats.tlsBytesOut, Buffer.byteLength('HÉLLO WÖRLD') + out.length);
    assert.equal(stats.tcpBytesIn, 0);
    assert.equal(stats.connectionsTotal, 2);
  });

  test('a character split across TLS records comes back whole, once complete', async (t) => {
    const server = await serverFor(t, withTls());
    const client = await TcpPeer.tls(server.address().tlsPort!, { ca: pki.ca });
    t.after(() => client.socket.destroy());
    let expected = '';
    for (const [ch, upper] of [
      ['ß', 'SS'],
      ['ﬃ', 'FFI'],
      ['😀', '😀'],
    ] as const) {
      const bytes = Buffer.from(ch, 'utf8');
      for (const byte of bytes) {
        await client.write(Buffer.of(byte));
        await delay(20);
      }
      expected += upper;
      assert.equal((await client.waitForBytes(Buffer.byteLength(expected))).toString(), expected);
    }
    client.socket.end();
    assert.equal((await client.waitForEnd()).toString(), expected);
  });

  test('TLS 1.2 clients are served, half-close included', async (t) => {
    const server = await serverFor(t, withTls());
    const client = await TcpPeer.tls(server.address().tlsPort!, { ca: pki.ca, maxVersion: 'TLSv1.2' });
    assert.equal(client.socket.getProtocol(), 'TLSv1.2');
    client.socket.end('twelve');
    assert.equal((await client.waitForEnd()).toString(), 'TWELVE');
    assert.equal(client.ended, true);
  });

  test('a plaintext client on the TLS port is closed and counted; the server goes on', async (t) => {
    const server = await serverFor(t, withTls());
    const port = server.address().tlsPort!;
    const plain = await TcpPeer.connect(port, { allowHalfOpen: true });
    await plain.write('hello, is this upcase?\n');
    const got = await plain.waitForEnd();
    assert.ok(!got.includes('HELLO'), 'plaintext must not be answered');
    await until(() => server.stats.tlsHandshakeErrors === 1, 'the failed handshake is counted');
    assert.ok(
      Object.keys(server.stats.errors).some((code) => code.startsWith('ERR_SSL_')),
      JSON.stringify(server.stats.errors),
    );
    assert.equal((await tlsRoundTrip(port, 'still here', { ca: pki.ca })).toString(), 'STILL HERE');
  });

  test('a TLS client on the plain port fails with UPCASE_ERR_TLS; the server goes on', async (t) => {
    const server = await serverFor(t, withTls());
    const { port } = server.address();
    // The plain port echoes the ClientHello uppercased. Now and then the echo is shorter than the
    // record it claims to be (random bytes ending in what starts a UTF-8 character, which the server
    // holds for the rest, or `ı`/`ſ`, whose uppercase is one byte): the client then waits for the
    // rest and times out. Each try has a fresh random ClientHello.
    let err: (Error & { code?: string }) | undefined;
    for (let tries = 0; tries < 4 && err?.code !== 'UPCASE_ERR_TLS'; tries++) {
      err = await tcpRequest('x', { host: '127.0.0.1', port, tls: { ca: pki.ca }, timeout: 2 }).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      assert.ok(err, 'a TLS client on the plain port must fail');
    }
    assert.equal(err?.code, 'UPCASE_ERR_TLS', String(err));
    assert.match(err.message, new RegExp(`^TLS to 127\\.0\\.0\\.1:${port} failed: .*did not answer in TLS`));
    assert.equal((await tcpRoundTrip(port, 'plain still works')).toString(), 'PLAIN STILL WORKS');
  });

  test('a stalled handshake is cut off after tlsHandshakeTimeout: silent, and mid-ClientHello', async (t) => {
    // The idle timeout is far away: only the handshake timeout can close these.
    const server = await serverFor(t, withTls({ tlsHandshakeTimeout: 0.3, idleTimeout: 600 }));
    const port = server.address().tlsPort!;
    const silent = await TcpPeer.connect(port, { allowHalfOpen: true });
    const partial = await TcpPeer.connect(port, { allowHalfOpen: true });
    // A handshake record header announcing 512 bytes of ClientHello, then 2 of them.
    await partial.write(Buffer.from('1603010200' + '0100', 'hex'));
    await Promise.all([silent.waitForEnd(5000), partial.waitForEnd(5000)]);
    await until(() => server.stats.errors.ERR_TLS_HANDSHAKE_TIMEOUT === 2, 'both counted as handshake timeouts');
    assert.equal(server.stats.tlsHandshakeErrors, 2);
    await until(() => server.connectionCount === 0, 'the TCP sockets are let go');
  });

  test('the idle timeout runs on the TLS connection: silence closes it, traffic keeps it', async (t) => {
    const server = await serverFor(t, withTls({ idleTimeout: 0.4 }));
    const port = server.address().tlsPort!;
    const busy = await TcpPeer.tls(port, { ca: pki.ca });
    t.after(() => busy.socket.destroy());
    const quiet = await TcpPeer.tls(port, { ca: pki.ca });
    // Three idle periods of traffic on `busy`: the TCP socket underneath sees none of it
    // as reads of its own, so this fails if its timer were still armed.
    for (let i = 1; i <= 12; i++) {
      await busy.write('x');
      await busy.waitForBytes(i);
      await delay(100);
    }
    assert.equal(busy.closed, false);
    await quiet.waitForEnd(5000);
    assert.equal(server.stats.idleTimeouts, 1);
  });

  test('maxConnections is one budget for the plain and the TLS port', async (t) => {
    const server = await serverFor(t, withTls({ maxConnections: 2, udp: false }));
    const { port, tlsPort } = server.address();
    const plain = await TcpPeer.connect(port, { allowHalfOpen: true });
    t.after(() => plain.socket.destroy());
    const secure = await TcpPeer.tls(tlsPort!, { ca: pki.ca });
    t.after(() => secure.socket.destroy());
    await until(() => server.connectionCount === 2, 'two connections open');
    await assert.rejects(TcpPeer.tls(tlsPort!, { ca: pki.ca }));
    const third = await TcpPeer.connect(port, { allowHalfOpen: true });
    await third.waitForEnd(5000);
    assert.equal(server.stats.connectionsRefused, 2);
    // The two admitted ones are served.
    await secure.write('ok');
    assert.equal((await secure.waitForBytes(2)).toString(), 'OK');
  });

  test('with proxyProtocol, the PROXY header comes before the TLS handshake', async (t) => {
    const server = await serverFor(t, withTls({ proxyProtocol: true, udp: false }));
    const port = server.address().tlsPort!;
    const raw = net.connect({ host: '127.0.0.1', port });
    await within(5000, 'connect', new Promise((resolve) => raw.once('connect', resolve)));
    raw.write('PROXY TCP4 203.0.113.7 192.0.2.1 40000 12443\r\n');
    const socket = tls.connect({ socket: raw, ca: readFileSync(pki.ca), servername: 'localhost' });
    const client = new TcpPeer(socket);
    await within(5000, 'handshake', new Promise((resolve) => socket.once('secureConnect', resolve)));
    socket.end('behind a balancer');
    assert.equal((await client.waitForEnd()).toString(), 'BEHIND A BALANCER');
    assert.equal(server.stats.proxyAccepted, 1);
  });

  test('close() ends open TLS connections and handshakes in progress', async (t) => {
    const server = await serverFor(t, withTls());
    const port = server.address().tlsPort!;
    const secure = await TcpPeer.tls(port, { ca: pki.ca });
    const stalled = await TcpPeer.connect(port, { allowHalfOpen: true });
    await until(() => server.connectionCount === 2, 'both tracked');
    await within(5000, 'close', server.close());
    await Promise.all([secure.waitForEnd(5000), stalled.waitForEnd(5000)]);
  });

  test('PEM Buffers work as well as file paths', async (t) => {
    const server = await serverFor(t, { tlsCert: readFileSync(pki.server.cert), tlsKey: readFileSync(pki.server.key), tlsPort: 0 });
    assert.equal((await tlsRoundTrip(server.address().tlsPort!, 'buffers', { ca: pki.ca })).toString(), 'BUFFERS');
  });
});

describe('TLS certificate reload', () => {
  test('reloadTls(): new connections get the new certificate, open ones go on; a bad file keeps the old one', async (t) => {
    const live = pki.path('live');
    mkdirSync(live, { recursive: true });
    const certPath = `${live}/cert.pem`;
    const keyPath = `${live}/key.pem`;
    copyFileSync(pki.server.cert, certPath);
    copyFileSync(pki.server.key, keyPath);
    const server = await serverFor(t, { tlsCert: certPath, tlsKey: keyPath, tlsPort: 0 });
    const port = server.address().tlsPort!;

    const open = await TcpPeer.tls(port, { ca: pki.ca });
    t.after(() => open.socket.destroy());
    assert.equal(open.socket.getPeerCertificate().serialNumber, '1001');
    await open.write('before');
    await open.waitForBytes(6);

    copyFileSync(pki.server2.cert, certPath);
    copyFileSync(pki.server2.key, keyPath);
    const info = await server.reloadTls();
    assert.equal(info.serialNumber, '2002');
    const fresh = await TcpPeer.tls(port, { ca: pki.ca });
    assert.equal(fresh.socket.getPeerCertificate().serialNumber, '2002');
    fresh.socket.end('new');
    assert.equal((await fresh.waitForEnd()).toString(), 'NEW');

    // The connection made before the reload still works.
    open.socket.end(' and after');
    assert.equal((await open.waitForEnd()).toString(), 'BEFORE AND AFTER');

    // A broken file, then a key that is not the certificate's: rejected, the old one stays.
    writeFileSync(certPath, 'not a certificate\n');
    await assert.rejects(server.reloadTls(), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS certificate ${certPath} is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)`,
    });
    copyFileSync(pki.server.cert, certPath);
    await assert.rejects(server.reloadTls(), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS key ${keyPath} does not match certificate ${certPath}`,
    });
    const still = await TcpPeer.tls(port, { ca: pki.ca });
    assert.equal(still.socket.getPeerCertificate().serialNumber, '2002');
    still.socket.destroy();
  });

  test('reloadTls() without TLS, or before listening, rejects with UPCASE_ERR_CLOSED', async (t) => {
    const plain = await serverFor(t);
    await assert.rejects(plain.reloadTls(), { code: 'UPCASE_ERR_CLOSED', message: 'cannot reload TLS: TLS is not on' });
    const notYet = new UpcaseServer({ host: '127.0.0.1', port: 0, ...withTls() });
    await assert.rejects(notYet.reloadTls(), { code: 'UPCASE_ERR_CLOSED' });
  });
});

describe('TLS configuration errors', () => {
  const listen = (tlsCert: string | Buffer, tlsKey: string | Buffer) =>
    new UpcaseServer({ host: '127.0.0.1', port: 0, tlsPort: 0, tlsCert, tlsKey }).listen();

  test('certificate and key problems reject listen() with UPCASE_ERR_TLS and a message naming the file', async () => {
    const missing = pki.path('missing.pem');
    await assert.rejects(listen(missing, pki.server.key), {
      code: 'UPCASE_ERR_TLS',
      message: `cannot read TLS certificate ${missing}: no such file (ENOENT)`,
    });
    await assert.rejects(listen(pki.server.key, pki.server.key), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS certificate ${pki.server.key} is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)`,
    });
    await assert.rejects(listen(pki.server.cert, pki.server.cert), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS key ${pki.server.cert} is not a PEM private key (no -----BEGIN … PRIVATE KEY----- line)`,
    });
    await assert.rejects(listen(pki.server.cert, pki.server2.key), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS key ${pki.server2.key} does not match certificate ${pki.server.cert}`,
    });
    await assert.rejects(listen(pki.server.cert, pki.dir), {
      code: 'UPCASE_ERR_TLS',
      message: `cannot read TLS key ${pki.dir}: is a directory (EISDIR)`,
    });
  });

  test('an encrypted key is refused with a clear reason', async () => {
    const encrypted = pki.path('encrypted.key');
    const pem = readFileSync(pki.server.key);
    const { createPrivateKey } = await import('node:crypto');
    writeFileSync(encrypted, createPrivateKey(pem).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' }));
    await assert.rejects(listen(pki.server.cert, encrypted), {
      code: 'UPCASE_ERR_TLS',
      message: `TLS key ${encrypted} is encrypted; upcase needs an unencrypted key`,
    });
  });

  test('options: cert and key go together; TLS settings need TLS; ranges are checked', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ tlsCert: 'c.pem' }, /`tlsCert` to be used only with `tlsKey`, got `c.pem`/],
      [{ tlsKey: 'k.pem' }, /`tlsKey` to be used only with `tlsCert`, got `k.pem`/],
      [{ tlsPort: 443 }, /`tlsPort` to be used only with `tlsCert` and `tlsKey`/],
      [{ tlsHandshakeTimeout: 5 }, /`tlsHandshakeTimeout` to be used only with `tlsCert` and `tlsKey`/],
      [{ tlsCert: 'c.pem', tlsKey: 'k.pem', tlsPort: 70000 }, /`tlsPort` to be an integer port/],
      [{ tlsCert: 'c.pem', tlsKey: 'k.pem', tlsHandshakeTimeout: 0 }, /`tlsHandshakeTimeout` to be a number of seconds/],
      [{ tlsCert: '', tlsKey: 'k.pem' }, /`tlsCert` to be a file path/],
      [{ tlsCert: 'c.pem', tlsKey: 42 }, /`tlsKey` to be a file path \(string\) or PEM \(Buffer\), got `number`/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => new UpcaseServer(options), { code: 'UPCASE_ERR_INVALID_ARG', message }, JSON.stringify(options));
    }
  });
});
