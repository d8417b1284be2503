import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runBench } from '../../src/bench/run.js';
import { TlsError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { serverFor } from '../helpers/serve.js';
import { makePki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

describe('upcase bench over TLS', () => {
  test('runBench with tls: every reply verified, counted as TLS by the server', async (t) => {
    const server = await serverFor(t, { tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0, udp: false });
    const port = server.address().tlsPort!;
    const r = await runBench({ host: '127.0.0.1', port, tls: { ca: pki.ca }, connections: 3, duration: 0.3, warmup: 0, payload: 'utf8' });
    assert.equal(r.tls, true);
    assert.equal(r.errors.total, 0);
    assert.ok(r.requests.ok > 0);
    assert.equal(server.stats.tlsHandshakes, 3);
    assert.ok(server.stats.tlsBytesIn > 0);
    assert.equal(server.stats.tcpBytesIn, 0);
  });

  test('a certificate that does not verify stops the run with the reason', async (t) => {
    const server = await serverFor(t, { tlsCert: pki.expired.cert, tlsKey: pki.expired.key, tlsPort: 0, udp: false });
    const port = server.address().tlsPort!;
    await assert.rejects(
      runBench({ host: '127.0.0.1', port, tls: { ca: pki.ca }, connections: 2, duration: 0.2, warmup: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof TlsError);
        assert.equal(err.tlsCode, 'CERT_HAS_EXPIRED');
        return true;
      },
    );
    await assert.rejects(runBench({ transport: 'udp', tls: true }), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: /`tls` to be false over UDP/,
    });
  });

  test('CLI: --tls --ca runs and says TLS; failures exit 1 with the reason; --ca needs --tls; --tls excludes --udp', async (t) => {
    const server = await serverFor(t, { tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0, udp: false });
    const port = String(server.address().tlsPort!);
    const [ok, wrongCa, noTls, udp] = await Promise.all([
      runCli(['bench', '--tls', '--ca', pki.ca, '--host', 'localhost', '-p', port, '-c', '2', '-d', '300ms', '--warmup', '0']),
      runCli(['bench', '--tls', '--ca', pki.otherCa, '-p', port, '-c', '2', '-d', '300ms', '--warmup', '0']),
      runCli(['bench', '--ca', pki.ca, '-p', port]),
      runCli(['bench', '--tls', '--udp', '-p', port]),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^upcase bench: TLS localhost:${port}, 2 connection\\(s\\)`));
    assert.equal(wrongCa.code, 1);
    assert.equal(
      wrongCa.stderr,
      `upcase: TLS to localhost:${port} failed: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)
`,
    );
    assert.equal(noTls.code, 2);
    assert.equal(noTls.stderr, `upcase bench: --ca: expected used only with --tls, got ${pki.ca}\n`);
    assert.equal(udp.code, 2);
    assert.equal(udp.stderr, 'upcase bench: --udp: expected used only without --tls\n');
  });
});
