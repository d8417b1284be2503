import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, startInstance } from '../scaleout/lib.js';

const BIN = join(ROOT, 'bin', 'upcase.js');
const V1 = 'PROXY TCP4 203.0.113.7 192.0.2.1 40000 12000\r\n';

function serve(args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stderr: r.stderr };
}

function ask(port: number, localAddress: string, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => s.end(text));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
}

test('serve: --trusted-proxies without --proxy-protocol is a usage error (exit 2)', () => {
  const r = serve(['--trusted-proxies', '10.0.0.0/8']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'upcase serve: --trusted-proxies: expected used only with --proxy-protocol, got 10.0.0.0/8\n');
});

test('serve: a bad CIDR or header timeout is a usage error naming the flag and the value', () => {
  const r = serve(['--proxy-protocol', '--trusted-proxies', '10.0.0.0/8,300.0.0.0/8']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^upcase serve: --trusted-proxies: expected CIDR blocks .*, got 10\.0\.0\.0\/8,300\.0\.0\.0\/8\n$/);
  const t = serve(['--proxy-protocol', '--proxy-header-timeout', '0']);
  assert.equal(t.status, 2);
  assert.equal(t.stderr, 'upcase serve: --proxy-header-timeout: expected a number of seconds from 0.001 to 3600, got 0\n');
});

test('serve: UPCASE_PROXY_PROTOCOL and UPCASE_TRUSTED_PROXIES configure the server', async (t) => {
  const instance = await startInstance(['--no-udp', '--log-level', 'debug'], {
    UPCASE_PROXY_PROTOCOL: '1',
    UPCASE_TRUSTED_PROXIES: '127.0.0.2/32',
  });
  t.after(() => instance.stop());
  // 127.0.0.1 is loopback but not in the list: refused.
  assert.equal(await ask(instance.port, '127.0.0.1', `${V1}hello`), '');
  // 127.0.0.2 is trusted: its header is read and the rest is served.
  assert.equal(await ask(instance.port, '127.0.0.2', `${V1}hello`), 'HELLO');
  // The log writer is asynchronous: wait for the line, up to 5 s.
  const deadline = Date.now() + 5000;
  let open = instance.logs().find((l) => l.msg === 'connection open');
  while (open === undefined && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    open = instance.logs().find((l) => l.msg === 'connection open');
  }
  assert.equal(open?.remoteAddress, '203.0.113.7');
  assert.equal(open?.proxyAddress, '127.0.0.2');
});
