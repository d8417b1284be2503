/**
 * deploy/nginx/upcase-tls.conf, run for real: nginx terminating TLS in front of
 * plain upcase, and nginx passing TLS through (ssl_preread) to upcase's own TLS
 * port, both with the PROXY protocol, so the client address reaches upcase.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TcpPeer } from '../helpers/roundtrip.js';
import { ROOT, startServe, stopProcess } from '../helpers/serve.js';
import { until, untilListening } from '../helpers/wait.js';
import { CLIENT_ADDRESS, findExecutable, freePort, run } from './lib.js';
import { makePki, type TestPki } from '../helpers/pki.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const nginx = findExecutable('nginx');
const missing = nginx === null ? 'the nginx binary' : existsSync(STREAM_MODULE) ? null : STREAM_MODULE;
if (missing !== null) {
  process.stderr.write(
    `\ntls/nginx: SKIPPED — ${missing} is not installed (apt-get install nginx-light libnginx-mod-stream; .ci/run does this).\n\n`,
  );
}

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.remove());

/** deploy/nginx/upcase-tls.conf with test ports and paths; every replacement must hit. */
function testConfig(dir: string, ports: { termination: number; passthrough: number; plain: number; tls: number }): string {
  let conf = readFileSync(join(ROOT, 'deploy/nginx/upcase-tls.conf'), 'utf8');
  const replace = (pattern: RegExp, by: string): void => {
    assert.match(conf, pattern, `deploy/nginx/upcase-tls.conf changed: ${pattern} not found`);
    conf = conf.replace(pattern, by);
  };
  replace(/^user .*;$/m, '');
  replace(/^pid .*;$/m, `pid ${dir}/nginx.pid;`);
  replace(/^error_log .*;$/m, `error_log ${dir}/error.log info;`);
  replace(/access_log \S+ upcase_tls[^;]*;/, `access_log ${dir}/access.log upcase_tls;`);
  replace(/listen 12443 ssl;/, `listen 127.0.0.1:${ports.termination} ssl;`);
  replace(/listen 12444;/, `listen 127.0.0.1:${ports.passthrough};`);
  replace(/server 127\.0\.0\.1:12001 /, `server 127.0.0.1:${ports.plain} `);
  replace(/server 127\.0\.0\.1:12441 /, `server 127.0.0.1:${ports.tls} `);
  replace(/\/etc\/nginx\/tls\/upcase\.pem/, pki.server.cert);
  replace(/\/etc\/nginx\/tls\/upcase\.key/, pki.server.key);
  return conf;
}

/** A verified TLS exchange from CLIENT_ADDRESS: the reply and the serial of the certificate that answered. */
async function exchange(port: number, text: string): Promise<{ reply: string; serial: string }> {
  const client = await TcpPeer.tls(port, { ca: pki.ca, localAddress: CLIENT_ADDRESS });
  const serial = client.socket.getPeerCertificate().serialNumber;
  client.socket.end(text);
  return { reply: (await client.waitForEnd()).toString(), serial };
}

test('nginx in front: TLS termination and TLS passthrough, client addresses by PROXY protocol', {
  skip: missing !== null && process.env.CI !== 'true' ? `${missing} is not installed` : false,
  timeout: 60_000,
}, async (t) => {
  // Only reached without it under CI, where .ci/run installs it: say so rather than skip.
  assert.ok(missing === null, `${missing} is not installed, and CI must run this test (.ci/run installs it)`);
  const dir = mkdtempSync(join(tmpdir(), 'upcase-nginx-tls-'));
  let proxy: ChildProcess | null = null;
  t.after(async () => {
    if (proxy !== null) await stopProcess(proxy, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  // upcase's own certificate is server2 (serial 2002); nginx's is server (1001).
  const upcase = await startServe(
    [
      '--no-udp',
      '--tls-port',
      '0',
      '--tls-cert',
      pki.server2.cert,
      '--tls-key',
      pki.server2.key,
      '--proxy-protocol',
      '--trusted-proxies',
      '127.0.0.1/32',
      '--log-level',
      'debug',
    ],
    { t },
  );
  const ports = { termination: await freePort(), passthrough: await freePort(), plain: upcase.port, tls: upcase.tlsPort! };

  writeFileSync(join(dir, 'nginx.conf'), testConfig(dir, ports));
  const check = run(nginx!, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  assert.equal(check.status, 0, `nginx -t failed:\n${check.output}`);
  proxy = spawn(nginx!, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
  await untilListening(ports.termination);
  await untilListening(ports.passthrough);

  const terminated = await exchange(ports.termination, 'terminated at nginx');
  assert.deepEqual(terminated, { reply: 'TERMINATED AT NGINX', serial: '1001' });
  const passed = await exchange(ports.passthrough, 'passed through to upcase');
  assert.deepEqual(passed, { reply: 'PASSED THROUGH TO UPCASE', serial: '2002' });

  // upcase saw the client (127.0.0.2), not nginx (127.0.0.1), on both of its ports.
  const opened = (): Array<Record<string, unknown>> =>
    upcase.logs().filter((l) => l.msg === 'connection open' && l.remoteAddress === CLIENT_ADDRESS);
  await until(() => opened().length >= 2, 'both connection-open log lines', 10_000);
  assert.deepEqual(
    opened()
      .map((l) => [l.transport, l.proxyAddress])
      .sort(),
    [
      ['tcp', '127.0.0.1'],
      ['tls', '127.0.0.1'],
    ],
  );
});
