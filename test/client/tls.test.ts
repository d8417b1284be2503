import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { PassThrough, Readable } from 'node:stream';
import { connectTcp, tcpRequest, tcpStream } from '../../src/client/tcp.js';
import { upcase } from '../../src/codec/upcase.js';
import { TlsError } from '../../src/errors.js';
import { MiB } from '../helpers/roundtrip.js';
import { serverFor } from '../helpers/serve.js';
import { makePki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

/** A TLS server with `pair` (default: the good certificate); resolves to its TLS port. */
async function tlsServer(t: { after: (fn: () => unknown) => void }, pair?: { cert: string; key: string }): Promise<number> {
  const { cert, key } = pair ?? pki.server;
  const server = await serverFor(t, { tlsCert: cert, tlsKey: key, tlsPort: 0, udp: false });
  return server.address().tlsPort!;
}

function rejectsWith(promise: Promise<unknown>, tlsCode: string, message: RegExp): Promise<void> {
  return assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof TlsError, `expected a TlsError, got ${String(err)}`);
    assert.equal(err.code, 'UPCASE_ERR_TLS');
    assert.equal(err.tlsCode, tlsCode);
    assert.match(err.message, message);
    return true;
  });
}

describe('TLS client', () => {
  test('tcpRequest with tls: verified against the private CA, by name and by IP', async (t) => {
    const port = await tlsServer(t);
    const byName = await tcpRequest('héllo', { host: 'localhost', port, tls: { ca: pki.ca } });
    assert.equal(byName.toString(), 'HÉLLO');
    const byIp = await tcpRequest('by ip', { host: '127.0.0.1', port, tls: { ca: readFileSync(pki.ca) } });
    assert.equal(byIp.toString(), 'BY IP');
  });

  test('tcpStream with tls: 8 MiB streamed both ways', async (t) => {
    const port = await tlsServer(t);
    const input = Buffer.alloc(8 * MiB, 'aß€😀 ');
    const output = new PassThrough();
    const chunks: Buffer[] = [];
    output.on('data', (c: Buffer) => chunks.push(c));
    const result = await tcpStream(Readable.from([input.subarray(0, 3 * MiB + 1), input.subarray(3 * MiB + 1)]), output, {
      host: '127.0.0.1',
      port,
      tls: { ca: pki.ca },
    });
    assert.equal(result.inputComplete, true);
    assert.ok(Buffer.concat(chunks).equals(upcase(input)));
  });

  test('a certificate from another CA: "unable to verify"', async (t) => {
    const port = await tlsServer(t);
    await rejectsWith(
      tcpRequest('x', { host: '127.0.0.1', port, tls: { ca: pki.otherCa } }),
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      new RegExp(`^TLS to 127\\.0\\.0\\.1:${port} failed: unable to verify the first certificate \\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\\)$`),
    );
  });

  test('a certificate for another name: the names are in the message; servername can say which name to expect', async (t) => {
    const port = await tlsServer(t, pki.wrongName);
    await rejectsWith(
      tcpRequest('x', { host: 'localhost', port, tls: { ca: pki.ca } }),
      'ERR_TLS_CERT_ALTNAME_INVALID',
      /^TLS to localhost:\d+ failed: Hostname\/IP does not match certificate's altnames: Host: localhost\. is not in the cert's altnames: DNS:other\.example \(ERR_TLS_CERT_ALTNAME_INVALID\)$/,
    );
    const reply = await tcpRequest('named', { host: '127.0.0.1', port, tls: { ca: pki.ca, servername: 'other.example' } });
    assert.equal(reply.toString(), 'NAMED');
  });

  test('an expired certificate: "certificate has expired"', async (t) => {
    const port = await tlsServer(t, pki.expired);
    await rejectsWith(
      tcpRequest('x', { host: '127.0.0.1', port, tls: { ca: pki.ca } }),
      'CERT_HAS_EXPIRED',
      /^TLS to 127\.0\.0\.1:\d+ failed: certificate has expired \(CERT_HAS_EXPIRED\)$/,
    );
  });

  test('without ca, the system store does not know the private CA', async (t) => {
    const port = await tlsServer(t);
    await assert.rejects(tcpRequest('x', { host: 'localhost', port, tls: true }), (err: unknown) => {
      assert.ok(err instanceof TlsError);
      assert.match(err.tlsCode ?? '', /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
      return true;
    });
  });

  test('insecure: no verification, even of an expired certificate for another name', async (t) => {
    const port = await tlsServer(t, pki.expired);
    assert.equal((await tcpRequest('anyway', { host: '127.0.0.1', port, tls: { insecure: true } })).toString(), 'ANYWAY');
  });

  test('connectTcp with tls resolves to a verified socket', async (t) => {
    const port = await tlsServer(t);
    const socket = await connectTcp({ host: 'localhost', port, tls: { ca: pki.ca } });
    t.after(() => socket.destroy());
    assert.equal((socket as import('node:tls').TLSSocket).authorized, true);
  });

  test('nothing listening: UPCASE_ERR_CONNECT naming tls; a CA file that is not there: UPCASE_ERR_TLS', async (t) => {
    const port = await tlsServer(t);
    await assert.rejects(tcpRequest('x', { host: '127.0.0.1', port: 1, tls: { ca: pki.ca } }), {
      code: 'UPCASE_ERR_CONNECT',
      message: 'cannot connect to 127.0.0.1:1 (tls): connection refused (nothing is listening there)',
    });
    const missing = pki.path('nope.pem');
    await assert.rejects(tcpRequest('x', { host: '127.0.0.1', port, tls: { ca: missing } }), {
      code: 'UPCASE_ERR_TLS',
      message: `cannot read CA file ${missing}: no such file (ENOENT)`,
    });
  });

  test('options: tls over UDP and bad tls values are refused', async () => {
    const { UdpClient } = await import('../../src/client/udp.js');
    assert.throws(() => new UdpClient({ tls: true }), { code: 'UPCASE_ERR_INVALID_ARG', message: /`tls` to be false over UDP/ });
    await assert.rejects(tcpRequest('x', { tls: 'yes' as unknown as boolean }), { code: 'UPCASE_ERR_INVALID_ARG' });
    await assert.rejects(tcpRequest('x', { tls: { insecure: 1 as unknown as boolean } }), { code: 'UPCASE_ERR_INVALID_ARG' });
  });
});
