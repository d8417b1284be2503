// A worker killed under load (issue 16): `kill -9` of a worker, five times, while 16 clients make requests.
// Nothing may hang: every request either completes or fails at once (a reset from the dead worker), the
// primary holds no connection in CLOSE-WAIT, and its descriptors come back to where they were.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { upcase } from '../../src/codec/upcase.js';
import { openFds, type ReadyServe, startServe } from '../helpers/serve.js';
import { delay, until } from '../helpers/wait.js';

const CLIENTS = 16;
const KILLS = 5;
/** A request that takes longer than this on loopback is hung (a normal one takes about a millisecond). */
const HUNG_MS = 4000;

type Outcome = 'ok' | 'reset' | 'hung';

/** One request on a new connection: send, half-close, read to the end. */
function request(port: number, payload: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('hung');
    }, HUNG_MS);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).equals(upcase(payload)) ? 'ok' : 'reset');
    });
    socket.end(payload);
  });
}

/** Sockets of `pid` in CLOSE-WAIT (state 08 in /proc/net/tcp{,6}), by inode. */
function closeWaitSockets(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '08' && inodes.has(f[9]!)) count++;
    }
  }
  return count;
}

/** Waits until `done()` or `ms` have passed, whichever is first (the asserts that follow say which). */
async function settle(done: () => boolean, ms: number): Promise<void> {
  await until(done, 'settled', ms, 50).catch(() => undefined);
}

/** Worker pids by slot, from the primary's `worker listening` log lines (the newest per slot). */
function workers(server: ReadyServe): Map<number, number> {
  const bySlot = new Map<number, number>();
  for (const line of server.logs()) {
    if (line.msg === 'worker listening') bySlot.set(line.worker as number, line.workerPid as number);
  }
  return bySlot;
}

describe('a worker killed with SIGKILL under load', () => {
  let server: ReadyServe;

  before(async () => {
    server = await startServe(['--workers', '2', '--no-udp']);
    await until(() => workers(server).size === 2, 'two workers listening', 15_000);
  });

  after(async () => {
    await server.close();
  });

  it('leaves no client hung, no CLOSE-WAIT in the primary, and every descriptor released', async () => {
    const baselineFds = openFds(server.pid);
    const outcomes: Record<Outcome, number> = { ok: 0, reset: 0, hung: 0 };
    let running = true;
    const payload = Buffer.from('a worker may die at any moment; ß');
    const clients = Array.from({ length: CLIENTS }, async () => {
      // Bounded: stops when the kills are done, and after 50,000 requests whatever happens.
      for (let i = 0; running && i < 50_000; i++) outcomes[await request(server.port, payload)]++;
    });
    const listened = (): number => server.logs().filter((l) => l.msg === 'worker listening').length;
    for (let kill = 1; kill <= KILLS; kill++) {
      await delay(300);
      const before = listened();
      const pid = workers(server).get(1 + (kill % 2))!;
      process.kill(pid, 'SIGKILL');
      // The primary restarts it (100 ms backoff, doubling): wait until it listens again.
      await until(() => listened() > before, `worker restarted after kill ${kill}`, 15_000);
    }
    await delay(300);
    running = false;
    await Promise.all(clients);
    assert.ok(outcomes.ok > 100, `requests were served during the run (${JSON.stringify(outcomes)})`);
    assert.equal(outcomes.hung, 0, `requests hung (${JSON.stringify(outcomes)})`);
    // The primary must not hold any connection: nothing in CLOSE-WAIT, and its fds back to the baseline.
    await settle(() => closeWaitSockets(server.pid) === 0 && openFds(server.pid) <= baselineFds, 5000);
    assert.equal(closeWaitSockets(server.pid), 0, 'sockets left in CLOSE-WAIT in the primary');
    assert.ok(openFds(server.pid) <= baselineFds, `primary fds ${openFds(server.pid)} > baseline ${baselineFds}`);
  });
});

describe('every worker killed at once', () => {
  it('the primary stays up, restarts them all, and serves again (without a metrics endpoint)', async (t) => {
    // Nothing but the restart timers keeps the primary's event loop busy then: they must not be unref'd.
    const server = await startServe(['--workers', '2', '--no-udp'], { t });
    await until(() => workers(server).size === 2, 'two workers listening', 15_000);
    const listened = (): number => server.logs().filter((l) => l.msg === 'worker listening').length;
    const before = listened();
    for (const pid of workers(server).values()) process.kill(pid, 'SIGKILL');
    await until(() => listened() >= before + 2 || !server.alive(), 'both workers restarted', 15_000);
    assert.ok(server.alive(), `the primary exited when its workers died\n${server.stderr}`);
    assert.equal(await request(server.port, Buffer.from('still here')), 'ok');
  });
});
