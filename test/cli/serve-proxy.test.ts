import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { LOOPBACK, startServe } from '../helpers/serve.js';

const V1 = 'PROXY TCP4 203.0.113.7 192.0.2.1 40000 12000\r\n';

const serve = (args: string[]) => runCli(['serve', ...LOOPBACK, ...args], { timeoutMs: 10_000 });

/** The reply from `localAddress`; '' when the server closes (or resets) without one. */
function ask(port: number, localAddress: string, text: string): Promise<string> {
  return tcpRoundTrip(port, text, { localAddress }).then(String, () => '');
}

test('serve: --trusted-proxies without --proxy-protocol is a usage error (exit 2)', async () => {
  const r = await serve(['--trusted-proxies', '10.0.0.0/8']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'upcase serve: --trusted-proxies: expected used only with --proxy-protocol, got 10.0.0.0/8\n');
});

test('serve: a bad CIDR or header timeout is a usage error naming the flag and the value', async () => {
  const r = await serve(['--proxy-protocol', '--trusted-proxies', '10.0.0.0/8,300.0.0.0/8']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^upcase serve: --trusted-proxies: expected CIDR blocks .*, got 10\.0\.0\.0\/8,300\.0\.0\.0\/8\n$/);
  const t = await serve(['--proxy-protocol', '--proxy-header-timeout', '0']);
  assert.equal(t.code, 2);
  assert.equal(t.stderr, 'upcase serve: --proxy-header-timeout: expected a number of seconds from 0.001 to 3600, got 0\n');
});

test('serve: UPCASE_PROXY_PROTOCOL and UPCASE_TRUSTED_PROXIES configure the server', async (t) => {
  const instance = await startServe(['--no-udp', '--log-level', 'debug'], {
    env: { UPCASE_PROXY_PROTOCOL: '1', UPCASE_TRUSTED_PROXIES: '127.0.0.2/32' },
    t,
  });
  // 127.0.0.1 is loopback but not in the list: refused.
  assert.equal(await ask(instance.port, '127.0.0.1', `${V1}hello`), '');
  // 127.0.0.2 is trusted: its header is read and the rest is served.
  assert.equal(await ask(instance.port, '127.0.0.2', `${V1}hello`), 'HELLO');
  // The log writer is asynchronous: wait for the line.
  const open = await instance.log((l) => l.msg === 'connection open', 5000);
  assert.equal(open.remoteAddress, '203.0.113.7');
  assert.equal(open.proxyAddress, '127.0.0.2');
});
