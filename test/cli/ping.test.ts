import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deadUdpPort } from '../helpers/programs.js';
import { runCli } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';
import { suiteServer } from '../helpers/serve.js';
import { delay } from '../helpers/wait.js';

const REPLY = /^(\d+) bytes from 127\.0\.0\.1:(\d+): seq=(\d+) time=(\d+\.\d{3}) ms$/;
const STATS = /^(\d+) packets transmitted, (\d+) received(?:, \+(\d+) errors)?, ([\d.]+)% packet loss, time (\d+)ms$/;
const RTT = /^rtt min\/avg\/max\/mdev = (\d+\.\d{3})\/(\d+\.\d{3})\/(\d+\.\d{3})\/(\d+\.\d{3}) ms$/;

describe('upcase ping', () => {
  const shared = suiteServer({ tcp: false });

  test('prints like ping(8): header, one line per reply, statistics; exit 0', async () => {
    const r = await runCli(['ping', '127.0.0.1', '--port', String(shared.port), '-c', '3', '-i', '0.02', '-s', '64']);
    const lines = r.stdout.toString().trimEnd().split('\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lines[0], `PING 127.0.0.1:${shared.port} (udp): 64 data bytes`);
    const seqs = lines.slice(1, 4).map((line) => {
      const m = REPLY.exec(line);
      assert.ok(m, line);
      assert.equal(m[1], '64');
      assert.equal(m[2], String(shared.port));
      return Number(m[3]);
    });
    assert.deepEqual(seqs.sort(), [1, 2, 3]);
    assert.equal(lines[4], `--- 127.0.0.1:${shared.port} upcase ping statistics ---`);
    const stats = STATS.exec(lines[5]!);
    assert.ok(stats, lines[5]);
    assert.deepEqual([stats[1], stats[2], stats[3], stats[4]], ['3', '3', undefined, '0']);
    const rtt = RTT.exec(lines[6]!);
    assert.ok(rtt, lines[6]);
    const [min, avg, max] = [Number(rtt[1]), Number(rtt[2]), Number(rtt[3])];
    assert.ok(min <= avg && avg <= max);
    // Then what ping(8) does not report (docs/clients.md).
    assert.match(lines[7]!, /^rtt median \d+\.\d{3} ms, stddev \d+\.\d{3} ms$/);
    assert.match(lines[8]!, /^ipdv \(jitter\) min\/mean\/median\/max\/stddev = (\d+\.\d{3}\/){4}\d+\.\d{3} ms$/);
    assert.equal(lines[9], 'lost 0, late 0, duplicates 0, reordered 0');
    assert.equal(lines.length, 10);
  });

  test('nothing listening: port unreachable lines, 100% loss, exit 1', async () => {
    const dead = await deadUdpPort();
    // Linux rate-limits ICMP machine-wide (net.ipv4.icmp_msgs_per_sec), and other tests flood closed
    // ports: a run whose ICMP reports were dropped (seq=1 timed out) is tried again, a few times.
    let r = await runCli(['ping', '127.0.0.1', '--port', String(dead), '-c', '2', '-i', '0.02']);
    for (let tries = 1; tries < 5 && !/\+2 errors/.test(r.stdout.toString()); tries++) {
      await delay(500);
      r = await runCli(['ping', '127.0.0.1', '--port', String(dead), '-c', '2', '-i', '0.02']);
    }
    const out = r.stdout.toString();
    assert.match(out, new RegExp(`^From 127\\.0\\.0\\.1:${dead}: seq=1 Destination port unreachable$`, 'm'));
    assert.match(out, /^2 packets transmitted, 0 received, \+2 errors, 100% packet loss, time \d+ms$/m);
    assert.doesNotMatch(out, /rtt min/);
    assert.equal(r.code, 1);
  });

  test('Ctrl-C (SIGINT) stops an endless run and prints the summary', async () => {
    let replies = 0;
    let interrupted = false;
    const r = await runCli(['ping', '127.0.0.1', '--port', String(shared.port), '-i', '0.02'], {
      onSpawn: (child) => {
        child.stdout!.on('data', (c: Buffer) => {
          replies += c
            .toString()
            .split('\n')
            .filter((l) => REPLY.test(l)).length;
          if (replies >= 3 && !interrupted) interrupted = child.kill('SIGINT');
        });
      },
    });
    const out = r.stdout.toString();
    assert.match(out, new RegExp(`^--- 127\\.0\\.0\\.1:${shared.port} upcase ping statistics ---$`, 'm'));
    const stats = out
      .split('\n')
      .map((l) => STATS.exec(l))
      .find((m) => m !== null);
    assert.ok(stats, out);
    assert.ok(Number(stats[2]) >= 3);
    assert.match(out, RTT_LINE);
    assert.equal(r.code, 0);
  });

  test('usage errors exit 2', async () => {
    for (const args of [
      ['-s', '8'],
      ['-s', '70000'],
      ['-i', '0'],
      ['-c', '-1'],
      ['-W', '0'],
      ['--port', '0'],
    ]) {
      const r = await runCli(['ping', '127.0.0.1', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout.length, 0);
    }
  });
});

const RTT_LINE = /^rtt min\/avg\/max\/mdev = [\d./]+ ms$/m;

describe('upcase ping against a rate-limited server', () => {
  test('losses after a clean burst come with a hint about --udp-rate-limit', async (t) => {
    const serve = await startServe(['--udp-rate-limit', '20', '--no-tcp', '--log-level', 'silent'], { t });
    const r = await runCli(['ping', '127.0.0.1', '--port', String(serve.port), '-c', '80', '-i', '0.002', '-W', '0.2']);
    const stats = r.stdout
      .toString()
      .split('\n')
      .map((l) => STATS.exec(l))
      .find((m) => m !== null);
    assert.ok(stats, r.stdout.toString());
    // A burst of 20, then about 20/s for the ~0.2 s of the run.
    assert.ok(Number(stats[2]) >= 20 && Number(stats[2]) < 60, stats[0]);
    assert.match(r.stderr, /^upcase: hint: the first \d+ pings were all answered, then [\d.]+% were lost: .*upcase serve --udp-rate-limit/);
    assert.equal(r.code, 0);
  });
});
