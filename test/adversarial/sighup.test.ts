// SIGHUP at badly timed moments (issue 16): during the start of a cluster, right after a worker was killed
// (while its replacement starts), during the drain, and without TLS. The service stays up, every worker
// survives, and a worker that starts after a reload serves the reloaded certificate.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TcpPeer, tcpRoundTrip } from '../helpers/roundtrip.js';
import { type ServeProcess, spawnServe } from '../helpers/serve.js';
import { delay, until } from '../helpers/wait.js';
import { makePki, type TestPki } from '../helpers/pki.js';

const BASE = ['--log-level', 'info'];

function tlsArgs(cert: string, key: string): string[] {
  return ['--tls-port', '0', '--tls-cert', cert, '--tls-key', key];
}

const logs = (p: ServeProcess): Array<Record<string, unknown>> => p.logs();
const listened = (p: ServeProcess): number => logs(p).filter((l) => l.msg === 'worker listening').length;
const deaths = (p: ServeProcess): Array<Record<string, unknown>> => logs(p).filter((l) => l.msg === 'worker died; restarting');
/** The plain and TLS ports from the ready line (`… on tcp+udp 127.0.0.1:P, tls 127.0.0.1:T`). */
async function ports(p: ServeProcess): Promise<{ port: number; tlsPort: number }> {
  // A generous bound: a cluster with TLS starts slowly on a busy machine.
  await p.line(/^The server is ready to receive on /, 40_000);
  const m = p.stdout.match(/ready to receive on \S+ 127\.0\.0\.1:(\d+), tls 127\.0\.0\.1:(\d+)/)!;
  return { port: Number(m[1]), tlsPort: Number(m[2]) };
}

const newestWorkerPid = (p: ServeProcess, slot: number): number =>
  logs(p)
    .filter((l) => l.msg === 'worker listening' && l.worker === slot)
    .at(-1)!.workerPid as number;

/** Waits until `pid` catches SIGHUP (signal 1: bit 0 of SigCgt in /proc/PID/status). */
async function catchesSighup(pid: number): Promise<void> {
  const caught = (): boolean => {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & 1n) !== 0n;
  };
  await until(caught, 'the process to catch SIGHUP', 10_000);
}

async function stop(p: ServeProcess): Promise<void> {
  if (p.alive()) {
    p.signal('SIGTERM');
    await p.exitWithin(20_000);
  }
}

describe('SIGHUP at any moment', () => {
  let pki: TestPki;
  let cert: string;
  let key: string;

  before(() => {
    pki = makePki();
    const live = pki.path('sighup-live');
    mkdirSync(live, { recursive: true });
    cert = `${live}/cert.pem`;
    key = `${live}/key.pem`;
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
  });

  after(() => pki.remove());

  it('during the start of --workers 2 with TLS: the start succeeds and no worker dies', async () => {
    for (const gapMs of [0, 50, 150, 400]) {
      const p = spawnServe([...BASE, '--workers', '2', ...tlsArgs(cert, key)]);
      try {
        // Signals from the first moment the primary catches SIGHUP (before that, Node itself is
        // still starting and no program can) to past the workers' start.
        const hangups = (async () => {
          await catchesSighup(p.child.pid!);
          await delay(gapMs);
          for (let i = 0; i < 8 && p.child.exitCode === null; i++) {
            p.signal('SIGHUP');
            await delay(100);
          }
        })();
        const ready = await ports(p);
        await hangups;
        await delay(200);
        assert.equal(p.child.exitCode, null, `the primary exited\n${p.stderr}`);
        assert.deepEqual(deaths(p), [], 'a worker died');
        assert.equal(await tcpRoundTrip(ready.port, 'still up').then(String), 'STILL UP');
      } finally {
        await stop(p);
      }
    }
  });

  it('while a killed worker restarts: the replacement survives, and it serves the reloaded certificate', async () => {
    const p = spawnServe([...BASE, '--workers', '2', ...tlsArgs(cert, key)]);
    try {
      const { port, tlsPort } = await ports(p);
      await until(() => listened(p) === 2, 'two workers listening', 15_000);
      for (const gapMs of [150, 300, 500]) {
        const before = listened(p);
        process.kill(newestWorkerPid(p, 1), 'SIGKILL');
        await delay(gapMs);
        p.signal('SIGHUP');
        await until(() => listened(p) > before, 'the killed worker to be replaced', 15_000);
      }
      // Every death was one of ours (SIGKILL), none from SIGHUP; the backoff never had to grow past the first step.
      assert.deepEqual(
        deaths(p).map((d) => d.signal),
        ['SIGKILL', 'SIGKILL', 'SIGKILL'],
      );
      // Reload, then replace a worker: the new one reads the reloaded files.
      copyFileSync(pki.server2.cert, cert);
      copyFileSync(pki.server2.key, key);
      p.signal('SIGHUP');
      await until(() => logs(p).filter((l) => l.msg === 'tls certificate reloaded').length >= 2, 'both workers reload', 15_000);
      const before = listened(p);
      process.kill(newestWorkerPid(p, 2), 'SIGKILL');
      await until(() => listened(p) > before, 'worker 2 replaced', 15_000);
      for (let i = 0; i < 6; i++) {
        const c = await TcpPeer.tls(tlsPort, { ca: pki.ca });
        assert.equal(c.socket.getPeerCertificate().serialNumber, '2002');
        c.socket.destroy();
      }
      assert.equal(String(await tcpRoundTrip(port, 'ok')), 'OK');
    } finally {
      copyFileSync(pki.server.cert, cert);
      copyFileSync(pki.server.key, key);
      await stop(p);
    }
  });

  it('during the drain, and without TLS: nothing ends before its time', async () => {
    for (const workers of ['1', '2']) {
      const p = spawnServe([...BASE, '--workers', workers, '--drain-timeout', '3']);
      try {
        const { port } = await p.ready();
        p.signal('SIGHUP');
        await delay(200);
        assert.equal(p.child.exitCode, null, `SIGHUP ended the server (--workers ${workers})`);
        assert.equal(String(await tcpRoundTrip(port, 'hup')), 'HUP');
        // An open connection keeps the drain going until --drain-timeout (3 s) closes it.
        const open = net.connect({ host: '127.0.0.1', port });
        open.on('error', () => {});
        await once(open, 'connect');
        await delay(100);
        p.signal('SIGTERM');
        for (const gapMs of [100, 500, 1000]) {
          await delay(gapMs);
          p.signal('SIGHUP');
        }
        assert.deepEqual(await p.exitWithin(20_000), { code: 0, signal: null });
        open.destroy();
        assert.deepEqual(deaths(p), []);
      } finally {
        await stop(p);
      }
    }
  });
});
