/** The limit flags of `upcase serve` as a user sets them: flags, environment, and the log that confirms them. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { BIN, startServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

/** The `listening` log line, and the warning about a lowered connection limit if there was one. */
async function startLines(args: string[], env: Record<string, string> = {}) {
  const server = await startServe(args, { env });
  try {
    await until(() => server.logs().some((l) => l.msg === 'listening'), 'the listening line', 5000);
    const lines = server.logs();
    return {
      listening: lines.find((l) => l.msg === 'listening')!,
      lowered: lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('max connections lowered')),
    };
  } finally {
    await server.close();
  }
}

async function listeningLine(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return (await startLines(args, env)).listening;
}

describe('upcase serve limits', () => {
  test('defaults for an exposed server', async () => {
    const { listening: line, lowered } = await startLines([]);
    assert.deepEqual([line.idleTimeout, line.writeTimeout, line.udpRateLimit, line.udpAllowLowPorts], [60, 30, 100, false]);
    // 1024, unless this machine's open-file limit cannot hold that many; then it says so.
    if (lowered === undefined) assert.equal(line.maxConnections, 1024);
    else assert.ok(lowered.maxConnections === 1024 && (lowered.effective as number) < 1024 && lowered.effective === line.maxConnections);
  });

  test('flags set every limit', async () => {
    const line = await listeningLine([
      '--max-connections',
      '7',
      '--idle-timeout',
      '2.5',
      '--write-timeout',
      '0',
      '--udp-rate-limit',
      '0',
      '--udp-allow-low-ports',
    ]);
    assert.deepEqual(
      [line.maxConnections, line.idleTimeout, line.writeTimeout, line.udpRateLimit, line.udpAllowLowPorts],
      [7, 2.5, 0, 0, true],
    );
  });

  test('--udp-rate-burst sets the bucket size (default: the rate), and a burst past it gets no reply', async () => {
    assert.equal((await listeningLine(['--udp-rate-limit', '50'])).udpRateBurst, 50);
    assert.equal((await listeningLine([], { UPCASE_UDP_RATE_BURST: '7' })).udpRateBurst, 7);
    const server = await startServe(['--udp-rate-limit', '1', '--udp-rate-burst', '3']);
    try {
      const socket = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const replies: string[] = [];
      socket.on('message', (msg: Buffer) => replies.push(msg.toString()));
      for (let i = 0; i < 10; i++) socket.send(`burst ${i}`, server.port, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 500));
      socket.close();
      assert.deepEqual(replies, ['BURST 0', 'BURST 1', 'BURST 2']);
    } finally {
      await server.close();
    }
  });

  test('UPCASE_UDP_ALLOW_LOW_PORTS is read by value: 0 and false keep the guard on', async () => {
    assert.equal((await listeningLine([], { UPCASE_UDP_ALLOW_LOW_PORTS: '0' })).udpAllowLowPorts, false);
    assert.equal((await listeningLine([], { UPCASE_UDP_ALLOW_LOW_PORTS: 'false' })).udpAllowLowPorts, false);
    assert.equal((await listeningLine([], { UPCASE_UDP_ALLOW_LOW_PORTS: 'true' })).udpAllowLowPorts, true);
  });

  test('a bad limit value is a usage error (exit 2) naming the flag', () => {
    for (const [args, env, pattern] of [
      [['--max-connections', '0'], {}, /max-connections/],
      [['--idle-timeout', '-1'], {}, /idle-timeout/],
      [['--udp-rate-limit', 'lots'], {}, /udp-rate-limit/],
      [['--udp-rate-burst', '0'], {}, /udp-rate-burst/],
      [[], { UPCASE_UDP_ALLOW_LOW_PORTS: 'maybe' }, /UPCASE_UDP_ALLOW_LOW_PORTS/],
    ] as const) {
      const run = spawnSync(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 10_000,
      });
      assert.equal(run.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: exit ${run.status}, stderr ${run.stderr}`);
      assert.match(run.stderr, pattern);
    }
  });
});
