/**
 * deploy/nginx/upcase.conf, run for real: nginx (stream module) in front of 3
 * `upcase serve --proxy-protocol` processes, ≥10,000 TCP and ≥10,000 UDP
 * requests through it, one instance killed with SIGKILL under load.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CLIENT_ADDRESS,
  findExecutable,
  freePort,
  type LoadResult,
  requestText,
  run,
  runLoad,
  tcpRequest,
  tcpSession,
  udpClient,
  udpRequest,
} from './lib.js';
import { type ReadyServe, ROOT, startServe, stopProcess } from '../helpers/serve.js';
import { untilListening } from '../helpers/wait.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const TCP_SESSIONS = 2_000; // connections through nginx,
const REQUESTS_PER_SESSION = 5; // each carrying this many request/reply exchanges
const TCP_REQUESTS = TCP_SESSIONS * REQUESTS_PER_SESSION;
const UDP_REQUESTS = 10_000;
const CONCURRENCY = 16;
// One instance is killed once both loads are 40% done; neither passes 50% before that.
const KILL_AT = 0.4;
const HOLD_AT = 0.5;
const INSTANCES = 3;

const nginx = findExecutable('nginx');
const missing = nginx === null ? 'the nginx binary' : existsSync(STREAM_MODULE) ? null : STREAM_MODULE;
if (missing !== null) {
  process.stderr.write(
    `\nscaleout/nginx: SKIPPED — ${missing} is not installed. Install it with ` +
      '`apt-get install nginx-light libnginx-mod-stream` (.ci/run does this when it can).\n\n',
  );
}

/**
 * deploy/nginx/upcase.conf with only what must differ in a test: ports,
 * file paths, no `user` switch, and a fail_timeout longer than the test so
 * the dead instance is not probed again while we count.
 */
function testConfig(dir: string, listenPort: number, ports: number[]): string {
  let conf = readFileSync(join(ROOT, 'deploy/nginx/upcase.conf'), 'utf8');
  const replace = (pattern: RegExp, by: string | ((...m: string[]) => string), expected: number): void => {
    const found = conf.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))?.length ?? 0;
    assert.equal(found, expected, `deploy/nginx/upcase.conf changed: ${pattern} matched ${found} times, expected ${expected}`);
    conf = conf.replace(pattern, by as string);
  };
  replace(/^user .*;$/m, '', 1);
  replace(/^pid .*;$/m, `pid ${dir}/nginx.pid;`, 1);
  replace(/^error_log .*;$/m, `error_log ${dir}/error.log info;`, 1);
  replace(/access_log \S+ upcase[^;]*;/, `access_log ${dir}/access.log upcase;`, 1);
  replace(/^\s*listen \[::\]:12000.*\n/gm, '', 2); // loopback IPv4 only in tests
  replace(/listen 12000/g, `listen 127.0.0.1:${listenPort}`, 2);
  replace(/server 127\.0\.0\.1:1200([1-3])/g, (_m, n) => `server 127.0.0.1:${ports[Number(n) - 1]}`, 6);
  replace(/fail_timeout=10s/g, 'fail_timeout=120s', 6);
  return conf;
}

function startNginx(dir: string): { process: ChildProcess; output: () => string } {
  const child = spawn(nginx!, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { process: child, output: () => output };
}

/** nginx access log lines: `client protocol status upstream bytes_in bytes_out time`. */
function sessions(dir: string): Array<{ protocol: string; status: string; upstream: string; bytesOut: number }> {
  return readFileSync(join(dir, 'access.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, protocol, status, ...rest] = line.split(' ');
      // $upstream_addr lists every instance tried: "a, b" (a failed, b served).
      const upstream = rest
        .slice(0, rest.length - 3)
        .join(' ')
        .split(', ')
        .pop()!;
      return { protocol: protocol!, status: status!, upstream, bytesOut: Number(rest[rest.length - 2]) };
    });
}

function summary(name: string, r: LoadResult): string {
  return `${name}: ${r.attempts} attempts, ${r.firstAttemptFailures.length} first-attempt failures, ${r.failed.length} failed`;
}

test('nginx balances TCP and UDP over 3 instances, passes client addresses by PROXY protocol, and routes around a killed instance', {
  skip: missing !== null && process.env.CI !== 'true' ? `${missing} is not installed` : false,
  timeout: 90_000,
}, async (t) => {
  // Only reached without it under CI, where .ci/run installs it: say so rather than skip.
  assert.ok(missing === null, `${missing} is not installed, and CI must run this test (.ci/run installs it)`);
  const deadline = Date.now() + 75_000;
  const dir = mkdtempSync(join(tmpdir(), 'upcase-nginx-'));
  const instances: ReadyServe[] = [];
  let proxy: ReturnType<typeof startNginx> | null = null;
  t.after(async () => {
    if (proxy !== null) await stopProcess(proxy.process, 'SIGTERM');
    await Promise.all(instances.map((i) => i.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (let i = 0; i < INSTANCES; i++) {
    instances.push(
      await startServe(['--proxy-protocol', '--trusted-proxies', '127.0.0.1/32', '--udp-rate-limit', '0', '--log-level', 'debug']),
    );
  }
  const ports = instances.map((i) => i.port);

  const listenPort = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), testConfig(dir, listenPort, ports));
  const check = run(nginx!, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  assert.equal(check.status, 0, `nginx -t failed:\n${check.output}`);
  proxy = startNginx(dir);
  await untilListening(listenPort, 10_000, CLIENT_ADDRESS).catch((err: Error) => {
    throw new Error(`${err.message}\nnginx said:\n${proxy!.output()}\n${readFileSync(join(dir, 'error.log'), 'utf8')}`);
  });

  // Clients that half-close right after sending (like `nc -q1`) still get their reply (proxy_half_close).
  for (let i = 0; i < 50; i++) assert.equal(await tcpRequest(listenPort, requestText(-i)), true, `half-closed request ${i}`);

  // A client that bypasses nginx is not a trusted proxy: refused, even though it is on loopback.
  assert.equal(await tcpRequest(ports[0]!, Buffer.from('direct')), false);

  const victim = instances[0]!;
  let killedAt = Infinity; // performance.now() once the victim is gone
  let markKilled: () => void;
  const killed = new Promise<void>((resolve) => (markKilled = resolve));
  const progress = { tcp: 0, udp: 0 };
  let killing = false;
  const maybeKill = (): void => {
    if (killing || progress.tcp < TCP_SESSIONS * KILL_AT || progress.udp < UDP_REQUESTS * KILL_AT) return;
    killing = true;
    victim.child.once('exit', () => {
      killedAt = performance.now();
      markKilled();
    });
    victim.kill();
  };

  const udpClients = await Promise.all(Array.from({ length: CONCURRENCY }, () => udpClient()));
  t.after(() => {
    for (const c of udpClients) c.close();
  });

  const [tcp, udp] = await Promise.all([
    runLoad({
      count: TCP_SESSIONS,
      concurrency: CONCURRENCY,
      maxAttempts: 5,
      deadline,
      before: (id) => (id >= TCP_SESSIONS * HOLD_AT ? killed : undefined),
      attempt: (_w, id) =>
        tcpSession(
          listenPort,
          Array.from({ length: REQUESTS_PER_SESSION }, (_, k) => requestText(id * REQUESTS_PER_SESSION + k)),
        ),
      onProgress: (done) => {
        progress.tcp = done;
        maybeKill();
      },
    }),
    runLoad({
      count: UDP_REQUESTS,
      concurrency: CONCURRENCY,
      maxAttempts: 5,
      deadline,
      before: (id) => (id >= UDP_REQUESTS * HOLD_AT ? killed : undefined),
      attempt: (w, id) => udpRequest(udpClients[w]!, listenPort, requestText(id)),
      onProgress: (done) => {
        progress.udp = done;
        maybeKill();
      },
    }),
  ]);
  t.diagnostic(`${TCP_REQUESTS} TCP requests on ${TCP_SESSIONS} connections, ${UDP_REQUESTS} UDP requests, ${CONCURRENCY} clients each`);
  t.diagnostic(summary('tcp', tcp));
  t.diagnostic(summary('udp', udp));

  // Clients with retries see no failed request.
  assert.deepEqual(tcp.failed, [], summary('tcp', tcp));
  assert.deepEqual(udp.failed, [], summary('udp', udp));
  assert.ok(Number.isFinite(killedAt), 'the instance was killed during the load');

  // Failures only for requests in flight when the instance died: a TCP connection
  // opened after that is never sent to it (nginx tries the next instance on a
  // refused connect); over UDP, nginx learns it from the first ICMP error.
  assert.ok(tcp.firstAttemptFailures.length <= CONCURRENCY, summary('tcp', tcp));
  assert.deepEqual(
    tcp.firstAttemptFailures.filter((f) => f.startedAt > killedAt),
    [],
    'TCP connections opened after the kill all succeeded at once',
  );
  assert.ok(udp.firstAttemptFailures.length <= CONCURRENCY, summary('udp', udp));

  // nginx's log: who served each TCP connection and UDP session.
  await stopProcess(proxy.process, 'SIGQUIT');
  proxy = null;
  const log = sessions(dir);
  const served = (protocol: string, port: number): number =>
    log.filter((s) => s.protocol === protocol && s.status === '200' && s.bytesOut > 0 && s.upstream === `127.0.0.1:${port}`).length;
  const shares = ports.map((p) => ({ tcp: served('TCP', p), udp: served('UDP', p) }));
  t.diagnostic(`sessions served per instance (victim first): ${JSON.stringify(shares)}`);
  for (const [i, share] of shares.entries()) {
    // The victim served only until it was killed, the others the rest: each a real share.
    assert.ok(share.tcp >= TCP_SESSIONS * 0.05, `instance ${i} served ${share.tcp} TCP connections`);
    assert.ok(share.udp >= UDP_REQUESTS * 0.05, `instance ${i} served ${share.udp} UDP requests`);
  }
  assert.ok(shares.reduce((n, s) => n + s.tcp, 0) >= TCP_SESSIONS, 'every TCP request was served by some instance');

  // The instances' own logs show the real client (127.0.0.2), not nginx (127.0.0.1).
  for (const [i, instance] of instances.entries()) {
    const opens = instance.logs().filter((l) => l.msg === 'connection open');
    assert.ok(opens.length > 0, `instance ${i} logged its connections`);
    const wrong = opens.filter((l) => l.remoteAddress !== CLIENT_ADDRESS || l.proxyAddress !== '127.0.0.1');
    assert.deepEqual(wrong.slice(0, 3), [], `instance ${i}: every connection is logged with the client address from the PROXY header`);
    if (i > 0) assert.ok(opens.length >= TCP_SESSIONS * 0.2, `instance ${i} logged ${opens.length} connections`);
  }
  const refused = instances[0]!.logs().filter((l) => l.msg === 'connection refused: peer is not a trusted proxy');
  assert.equal(refused[0]?.remoteAddress, CLIENT_ADDRESS, 'the direct connection was refused as untrusted');
});
