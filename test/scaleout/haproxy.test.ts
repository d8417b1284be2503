/**
 * deploy/haproxy/upcase.cfg, run for real: HAProxy `send-proxy-v2` (with a
 * unique-ID TLV, and LOCAL health checks) in front of an upcase server with
 * `proxyProtocol` on.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { startServer } from '../../src/server/server.js';
import { CLIENT_ADDRESS, findExecutable, freePort, type LogLine, requestText, run, tcpRequest, tcpSession } from './lib.js';
import { ROOT, stopProcess } from '../helpers/serve.js';
import { until, untilListening } from '../helpers/wait.js';

const haproxy = findExecutable('haproxy');
if (haproxy === null) {
  process.stderr.write(
    '\nscaleout/haproxy: SKIPPED — haproxy is not installed. Install it with `apt-get install haproxy` (.ci/run does this when it can).\n\n',
  );
}

/** deploy/haproxy/upcase.cfg with test ports, no user switch, fewer connections, faster checks, and a unique-ID TLV in the header. */
function testConfig(listenPort: number, serverPort: number): string {
  let cfg = readFileSync(join(ROOT, 'deploy/haproxy/upcase.cfg'), 'utf8');
  const replace = (pattern: RegExp, by: string, expected: number): void => {
    const found = cfg.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))?.length ?? 0;
    assert.equal(found, expected, `deploy/haproxy/upcase.cfg changed: ${pattern} matched ${found} times, expected ${expected}`);
    cfg = cfg.replace(pattern, by);
  };
  replace(/^\s*(user|group) haproxy\n/gm, '', 2);
  // 20000 connections need 40000 file descriptors, more than a test runner may raise its limit to.
  replace(/maxconn 20000/, 'maxconn 1000', 1);
  replace(/bind :12000/, `bind 127.0.0.1:${listenPort}\n    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid`, 1);
  replace(/default-server send-proxy-v2 /, 'default-server send-proxy-v2 proxy-v2-options unique-id ', 1);
  replace(/inter 2s/, 'inter 200ms', 1);
  // All three servers are the one test instance.
  replace(/127\.0\.0\.1:1200[1-3]/g, `127.0.0.1:${serverPort}`, 3);
  return cfg;
}

test('HAProxy send-proxy-v2 passes the client address to --proxy-protocol; its LOCAL health checks are accepted', {
  skip: haproxy === null && process.env.CI !== 'true' ? 'haproxy is not installed' : false,
  timeout: 60_000,
}, async (t) => {
  // Only reached without it under CI, where .ci/run installs it: say so rather than skip.
  assert.ok(haproxy !== null, 'haproxy is not installed, and CI must run this test (.ci/run installs it)');
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine & { proxyVersion?: number });
      cb();
    },
  });
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    udp: false,
    proxyProtocol: true,
    trustedProxies: '127.0.0.1/32',
    logger: pino({ level: 'debug' }, sink),
  });
  t.after(() => server.close());

  const dir = mkdtempSync(join(tmpdir(), 'upcase-haproxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const listenPort = await freePort();
  const cfgPath = join(dir, 'haproxy.cfg');
  writeFileSync(cfgPath, testConfig(listenPort, server.address().port));
  const check = run(haproxy!, ['-c', '-f', cfgPath]);
  assert.equal(check.status, 0, `haproxy -c failed:\n${check.output}`);

  const child = spawn(haproxy!, ['-db', '-f', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  t.after(() => stopProcess(child, 'SIGTERM'));
  await untilListening(listenPort, 10_000, CLIENT_ADDRESS).catch((err: Error) => {
    throw new Error(`${err.message}\nhaproxy said:\n${output}`);
  });

  // Half-closing clients, and clients with several exchanges per connection.
  for (let i = 0; i < 100; i++) assert.equal(await tcpRequest(listenPort, requestText(i)), true, `request ${i}:\n${output}`);
  for (let i = 0; i < 20; i++) {
    assert.equal(await tcpSession(listenPort, [requestText(i), requestText(i + 1), requestText(i + 2)]), true, `session ${i}`);
  }

  const opens = logs.filter((l) => l.msg === 'connection open') as Array<LogLine & { proxyVersion?: number }>;
  const proxied = opens.filter((l) => l.proxyAddress !== undefined);
  // 100 requests + 20 sessions + the readiness probe.
  assert.ok(proxied.length >= 120, `${proxied.length} proxied connections logged`);
  for (const l of proxied) {
    assert.equal(l.remoteAddress, CLIENT_ADDRESS, 'the client address from the header');
    assert.equal(l.proxyAddress, '127.0.0.1');
    assert.equal(l.proxyVersion, 2);
  }

  // HAProxy's health checks send a v2 LOCAL header: accepted, logged with the real peer.
  const checks = (): LogLine[] => logs.filter((l) => l.msg === 'connection open' && l.proxyAddress === undefined);
  await until(() => checks().length > 0, 'a LOCAL health check accepted', 10_000, 100);
  opens.splice(0, opens.length, ...logs.filter((l) => l.msg === 'connection open'));
  assert.equal(checks()[0]!.remoteAddress, '127.0.0.1');

  assert.equal(server.stats.proxyAccepted, opens.length);
  const rejected = Object.entries(server.stats.proxyRejected).filter(([reason, n]) => n > 0 && reason !== 'truncated');
  assert.deepEqual(rejected, [], `no PROXY header from HAProxy was refused: ${JSON.stringify(logs.filter((l) => l.level >= 40))}`);
  assert.doesNotMatch(output, /is DOWN/, 'HAProxy never saw the instance as down');
});
