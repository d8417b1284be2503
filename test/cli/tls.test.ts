/**
 * `upcase serve --tls-*` and `upcase client --tls` as a user runs them, plus the
 * acceptance checks: openssl s_client and ncat --ssl talk to the server.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { TcpPeer } from '../helpers/roundtrip.js';
import { BIN, startServe } from '../helpers/serve.js';
import { until, within } from '../helpers/wait.js';
import { run, runCli } from '../helpers/cli.js';
import { makePki, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

const READY = /^The server is ready to receive on tcp\+udp 127\.0\.0\.1:\d+, tls 127\.0\.0\.1:\d+$/;

/** `upcase serve` with TLS on free ports; resolves with the process and its TLS port. */
async function serveTls(t: { after: (fn: () => unknown) => void }, cert = pki.server.cert, key = pki.server.key, extra: string[] = []) {
  const proc = await startServe(['--tls-port', '0', '--tls-cert', cert, '--tls-key', key, ...extra], { t });
  assert.match(proc.readyLine, READY);
  return { proc, port: proc.port, tlsPort: proc.tlsPort! };
}

const hasCommand = (name: string): boolean => spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;

/**
 * Runs an interactive program (openssl s_client): writes `input`, waits until
 * stdout shows `expect`, then stops it. Resolves with stdout and stderr.
 */
async function converse(command: string, args: string[], input: string, expect: string): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => {});
  child.stdin.write(input);
  try {
    await until(() => stdout.includes(expect) || child.exitCode !== null, `${command} prints ${expect}`, 15_000);
  } finally {
    child.kill('SIGKILL');
  }
  return { stdout, stderr };
}

describe('upcase serve with TLS', () => {
  test('the ready line names both ports; plain TCP and TLS both answer', async (t) => {
    const { port, tlsPort } = await serveTls(t);
    const plain = await run(process.execPath, [BIN, 'client', '--host', '127.0.0.1', '-p', String(port), 'plain']);
    assert.equal(plain.stdout.toString(), 'PLAIN\n');
    const secure = await run(process.execPath, [BIN, 'client', '--tls', '--ca', pki.ca, '-p', String(tlsPort), 'héllo', 'wörld']);
    assert.equal(secure.stderr, '');
    assert.equal(secure.stdout.toString(), 'HÉLLO\nWÖRLD\n');
    assert.equal(secure.code, 0);
  });

  test('acceptance: openssl s_client and ncat --ssl, verifying against the private CA; TLS 1.1 is refused', async (t) => {
    const { tlsPort } = await serveTls(t);
    const sClient = await converse(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-CAfile', pki.ca, '-quiet'],
      'hello from openssl\n',
      'HELLO FROM OPENSSL',
    );
    assert.match(sClient.stdout, /^HELLO FROM OPENSSL\n/);
    assert.match(sClient.stderr, /verify return:1/);

    assert.ok(hasCommand('ncat'), 'ncat is needed (apt-get install ncat; .ci/run installs it)');
    const ncat = await run('ncat', ['--ssl', '--ssl-trustfile', pki.ca, '--ssl-verify', 'localhost', String(tlsPort)], {
      input: 'hello from ncat\n',
    });
    assert.equal(ncat.stdout.toString(), 'HELLO FROM NCAT\n');
    assert.equal(ncat.code, 0);

    const old = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${tlsPort}`, '-tls1_1'], {
      input: '',
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.notEqual(old.status, 0);
    assert.match(old.stdout + old.stderr, /alert protocol version|no protocols available/);
  });

  test('--no-tcp --no-udp with TLS serves TLS alone; env variables work like the flags', async (t) => {
    const proc = await startServe(['--host', '127.0.0.1', '--no-tcp', '--no-udp'], {
      env: {
        UPCASE_TLS_CERT: pki.server.cert,
        UPCASE_TLS_KEY: pki.server.key,
        UPCASE_TLS_PORT: '0',
        UPCASE_TLS_HANDSHAKE_TIMEOUT: '2',
      },
      loopback: false,
      t,
    });
    assert.match(proc.readyLine, /^The server is ready to receive on tls 127\.0\.0\.1:\d+$/);
    const secure = await run(process.execPath, [BIN, 'client', '--tls', '--ca', pki.ca, '-p', String(proc.tlsPort), 'env']);
    assert.equal(secure.stdout.toString(), 'ENV\n');
    assert.deepEqual(await proc.stop(), { code: 0, signal: null });
  });

  test('certificate problems at startup: one line on stderr, exit 2 (a configuration error)', async () => {
    const missing = pki.path('missing.pem');
    const cases: Array<[string, string, string]> = [
      [missing, pki.server.key, `upcase: cannot read TLS certificate ${missing}: no such file (ENOENT)\n`],
      [
        pki.server.key,
        pki.server.key,
        `upcase: TLS certificate ${pki.server.key} is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)\n`,
      ],
      [pki.server.cert, pki.server2.key, `upcase: TLS key ${pki.server2.key} does not match certificate ${pki.server.cert}\n`],
    ];
    const results = await Promise.all(
      cases.map(([cert, key]) =>
        runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--tls-port', '0', '--tls-cert', cert, '--tls-key', key]),
      ),
    );
    results.forEach((r, i) => {
      assert.equal(r.stderr, cases[i]![2]);
      assert.equal(r.stdout, '');
      assert.equal(r.code, 2);
    });
  });

  test('usage errors (exit 2): cert without key, TLS settings without TLS, bad values', async () => {
    const [noKey, noCert, bad] = await Promise.all([
      runCli(['serve', '--tls-cert', pki.server.cert]),
      runCli(['serve', '--tls-port', '8443']),
      runCli(['serve', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-handshake-timeout', '0']),
    ]);
    assert.equal(noKey.code, 2);
    assert.equal(noKey.stderr, `upcase serve: --tls-cert: expected used only with --tls-key, got ${pki.server.cert}\n`);
    assert.equal(noCert.code, 2);
    assert.equal(noCert.stderr, 'upcase serve: --tls-port: expected used only with --tls-cert and --tls-key, got 8443\n');
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'upcase serve: --tls-handshake-timeout: expected a number of seconds from 0.001 to 3600, got 0\n');
  });

  test('SIGHUP reloads the certificate: new connections see it, an open one goes on; a bad file keeps the old one', async (t) => {
    const live = pki.path('cli-live');
    mkdirSync(live, { recursive: true });
    const cert = `${live}/cert.pem`;
    const key = `${live}/key.pem`;
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    const { proc, tlsPort } = await serveTls(t, cert, key);
    const serial = async (): Promise<string> => {
      const c = await TcpPeer.tls(tlsPort, { ca: pki.ca });
      const s = c.socket.getPeerCertificate().serialNumber;
      c.socket.destroy();
      return s;
    };
    const open = await TcpPeer.tls(tlsPort, { ca: pki.ca });
    t.after(() => open.socket.destroy());
    assert.equal(open.socket.getPeerCertificate().serialNumber, '1001');
    await open.write('one ');
    await open.waitForBytes(4);

    copyFileSync(pki.server2.cert, cert);
    copyFileSync(pki.server2.key, key);
    proc.child.kill('SIGHUP');
    await within(
      10_000,
      'the new certificate',
      (async () => {
        while ((await serial()) !== '2002') await new Promise((r) => setTimeout(r, 50));
      })(),
    );
    open.socket.end('two');
    assert.equal((await open.waitForEnd()).toString(), 'ONE TWO');

    writeFileSync(cert, 'garbage\n');
    proc.child.kill('SIGHUP');
    await until(() => proc.stderr.includes('tls reload failed'), 'the reload error is logged', 10_000);
    assert.match(proc.stderr, /tls reload failed, keeping the old certificate: TLS certificate .*cert\.pem is not a PEM certificate/);
    assert.equal(await serial(), '2002');
    assert.deepEqual(await proc.stop(), { code: 0, signal: null });
  });
});

describe('upcase serve --workers 2 with TLS', () => {
  test('every worker serves TLS; SIGHUP to the primary reloads the certificate in each of them', async (t) => {
    const live = pki.path('cluster-live');
    mkdirSync(live, { recursive: true });
    const cert = `${live}/cert.pem`;
    const key = `${live}/key.pem`;
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    const { proc, tlsPort } = await serveTls(t, cert, key, ['--workers', '2', '--log-level', 'info']);
    copyFileSync(pki.server2.cert, cert);
    copyFileSync(pki.server2.key, key);
    proc.child.kill('SIGHUP');
    await until(() => (proc.stderr.match(/tls certificate reloaded/g) ?? []).length === 2, 'both workers reload', 15_000);
    // The kernel hands connections to either worker: whichever takes one, it has the new certificate.
    for (let i = 0; i < 4; i++) {
      const c = await TcpPeer.tls(tlsPort, { ca: pki.ca });
      assert.equal(c.socket.getPeerCertificate().serialNumber, '2002');
      c.socket.end('w');
      assert.equal((await c.waitForEnd()).toString(), 'W');
    }
    assert.deepEqual(await proc.stop(), { code: 0, signal: null });
  });
});

describe('upcase client --tls', () => {
  test('verification failures say why, on one line, exit 1', async (t) => {
    const { tlsPort: expiredPort } = await serveTls(t, pki.expired.cert, pki.expired.key);
    const expired = await runCli(['client', '--tls', '--ca', pki.ca, '--host', '127.0.0.1', '-p', String(expiredPort), 'x']);
    assert.equal(expired.stderr, `upcase: TLS to 127.0.0.1:${expiredPort} failed: certificate has expired (CERT_HAS_EXPIRED)\n`);
    assert.equal(expired.code, 1);
    const { tlsPort } = await serveTls(t);
    const wrongCa = await runCli(['client', '--tls', '--ca', pki.otherCa, '--host', '127.0.0.1', '-p', String(tlsPort), 'x']);
    assert.equal(
      wrongCa.stderr,
      `upcase: TLS to 127.0.0.1:${tlsPort} failed: unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)\n`,
    );
    assert.equal(wrongCa.code, 1);
    const wrongName = await runCli(['client', '--tls', '--ca', pki.ca, '--servername', 'other.example', '-p', String(tlsPort), 'x']);
    assert.match(
      wrongName.stderr,
      /^upcase: TLS to localhost:\d+ failed: Hostname\/IP does not match certificate's altnames: Host: other\.example\. is not in the cert's altnames: DNS:localhost, IP Address:127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID\)\n$/,
    );
  });

  test('--insecure skips verification and says so; --ca etc. need --tls; --tls excludes --udp', async (t) => {
    const { tlsPort } = await serveTls(t, pki.expired.cert, pki.expired.key);
    const insecure = await runCli(['client', '--tls', '--insecure', '-p', String(tlsPort), 'trust me']);
    assert.equal(insecure.stdout, 'TRUST ME\n');
    assert.equal(insecure.stderr, 'upcase: warning: --insecure: the server certificate is not verified\n');
    const [noTls, udp] = await Promise.all([runCli(['client', '--ca', pki.ca, 'x']), runCli(['client', '--tls', '--udp', 'x'])]);
    assert.equal(noTls.code, 2);
    assert.equal(noTls.stderr, `upcase client: --ca: expected used only with --tls, got ${pki.ca}\n`);
    assert.equal(udp.code, 2);
    assert.equal(udp.stderr, 'upcase client: --udp: expected used only without --tls\n');
  });
});
