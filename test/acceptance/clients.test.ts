import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { UdpClient } from '../../src/client/udp.js';
import { run, runCli } from '../helpers/cli.js';
import { BIN, type ReadyServe, startServe } from '../helpers/serve.js';

// The acceptance checks, as a new user would run them: the built CLI
// against `upcase serve`, with outside oracles (Python) where there is one.

const MIB = 1024 * 1024;

/** 64 MiB of mixed text: ASCII, ß/ﬃ/ǆ/ΐ (which change length), Greek, Cyrillic, emoji, and invalid bytes. */
async function writeMixedFile(path: string, size: number): Promise<void> {
  const tokens = [
    'hello ',
    'world\n',
    'straße ',
    'ﬃ ',
    'ǆ ',
    'ΐ ',
    'Ωμέγα ',
    'привет ',
    '😀 ',
    'x',
    Buffer.from([0xff]),
    Buffer.from([0xc3]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xe2, 0x82]),
    Buffer.from([0xf0, 0x9f]),
  ].map((t) => (typeof t === 'string' ? Buffer.from(t) : t));
  let seed = 42;
  const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  const parts: Buffer[] = [];
  let length = 0;
  // An odd block length, so repeats do not line up with any power-of-two read size.
  while (length < MIB + 7) {
    const t = tokens[Math.floor(random() * tokens.length)]!;
    parts.push(t);
    length += t.length;
  }
  const block = Buffer.concat(parts).subarray(0, MIB + 7);
  const out = createWriteStream(path);
  for (let written = 0; written < size; written += block.length) {
    const piece = block.subarray(0, Math.min(block.length, size - written));
    if (!out.write(piece)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('acceptance: upcase client < file, byte-exact and flat memory', () => {
  let dir: string;
  let serve: ReadyServe;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'upcase-client-'));
    serve = await startServe(['--no-udp', '--log-level', 'silent']);
  });
  after(async () => {
    await serve.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('64 MiB of mixed UTF-8 and invalid bytes round-trips exactly as Python uppercases it; client peak RSS < 150 MiB', async () => {
    const input = join(dir, 'in.bin');
    const expected = join(dir, 'expected.bin');
    const actual = join(dir, 'actual.bin');
    await writeMixedFile(input, 64 * MIB);
    // The oracle: Python's surrogateescape upper() (docs/protocol.md).
    const oracle = await run(
      'python3',
      [
        '-c',
        "import sys; open(sys.argv[2],'wb').write(open(sys.argv[1],'rb').read().decode('utf-8','surrogateescape').upper().encode('utf-8','surrogateescape'))",
        input,
        expected,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(oracle.code, 0, oracle.stderr);
    // `upcase client < in > out`, its peak RSS measured by the parent (ru_maxrss is in KiB on Linux).
    const measured = await run(
      'python3',
      [
        '-c',
        'import resource, subprocess, sys\n' +
          "r = subprocess.run(sys.argv[3:], stdin=open(sys.argv[1], 'rb'), stdout=open(sys.argv[2], 'wb'))\n" +
          'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n' +
          'sys.exit(r.returncode)',
        input,
        actual,
        process.execPath,
        BIN,
        'client',
        '--host',
        '127.0.0.1',
        '--port',
        String(serve.port),
      ],
      { timeoutMs: 90_000 },
    );
    assert.equal(measured.code, 0, measured.stderr);
    assert.equal(measured.stderr, '');
    assert.equal(await sha256(actual), await sha256(expected));
    const peakKiB = Number(measured.stdout.toString().trim());
    assert.ok(peakKiB > 0 && peakKiB < 150 * 1024, `client peak RSS ${Math.round(peakKiB / 1024)} MiB`);
  });
});

describe('acceptance: a UDP server that drops 30% of requests', () => {
  let serve: ReadyServe;
  before(async () => {
    serve = await startServe(['--no-tcp', '--drop-rate', '0.3', '--log-level', 'silent']);
  });
  after(() => serve.close());

  test('upcase client --udp still gets every reply, in order', async () => {
    const input = `${Array.from({ length: 50 }, (_, i) => `line ${i + 1}: straße`).join('\n')}\n`;
    // 13 tries: a line fails only if all 13 are dropped, 0.3^13 ≈ 1.6e-7.
    const r = await runCli(
      ['client', '--udp', '--host', '127.0.0.1', '--port', String(serve.port), '--timeout', '0.15', '--retries', '12'],
      {
        input,
        timeoutMs: 60_000,
      },
    );
    assert.equal(r.stdout.toString(), input.toUpperCase());
    assert.equal(r.code, 0, r.stderr);
  });

  test('the drops are real: the library client needed retries for 50 messages', async (t) => {
    const client = new UdpClient({ host: '127.0.0.1', port: serve.port, timeout: 0.15, retries: 12 });
    t.after(() => client.close());
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => client.request(`m${i}`)));
    assert.deepEqual(
      replies.map(String),
      Array.from({ length: 50 }, (_, i) => `M${i}`),
    );
    assert.ok(client.stats.tries > 50, `only ${client.stats.tries} tries`);
  });

  test('upcase ping -c 200 -i 0.005 -W 200 reports a loss near 30%', async () => {
    const r = await runCli(['ping', '127.0.0.1', '--port', String(serve.port), '-c', '200', '-i', '0.005', '-W', '0.2'], {
      timeoutMs: 30_000,
    });
    const lines = r.stdout.toString().trimEnd().split('\n');
    const replies = lines.filter((l) => / bytes from 127\.0\.0\.1:\d+: seq=\d+ time=/.test(l)).length;
    const timeouts = lines.filter((l) => /^Request timed out \(seq=\d+\)$/.test(l)).length;
    assert.equal(replies + timeouts, 200);
    const stats = /^200 packets transmitted, (\d+) received, ([\d.]+)% packet loss, time \d+ms$/m.exec(r.stdout.toString());
    assert.ok(stats, r.stdout.toString());
    assert.equal(Number(stats[1]), replies);
    const loss = Number(stats[2]);
    // Binomial(200, 0.3): 15%..45% is more than 4.5 standard deviations either side.
    assert.ok(loss >= 15 && loss <= 45, `loss ${loss}%`);
    assert.equal(r.code, 0);
  });
});
