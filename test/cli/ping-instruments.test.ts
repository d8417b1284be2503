import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { replySeq } from '../../src/client/ping.js';
import { upcase } from '../../src/codec/upcase.js';
import { fakeUdpServer, type Started, startOnFreePort, TEXTBOOK } from '../helpers/programs.js';
import { runCli } from '../helpers/cli.js';

const SEQ = /seq=(\d+)/;

test('lines come in sequence order: a timeout of seq 1 prints before the replies to seqs 2 to 5', async (t) => {
  const server = await fakeUdpServer((msg, rinfo, socket) => {
    if (replySeq(msg) !== 1) socket.send(upcase(msg), rinfo.port, rinfo.address);
  });
  t.after(() => server.close());
  const r = await runCli(['ping', '127.0.0.1', '-p', String(server.port), '-c', '5', '-i', '0.02', '-W', '0.3']);
  const lines = r.stdout.toString().split('\n');
  const probes = lines.filter((l) => SEQ.test(l));
  assert.deepEqual(
    probes.map((l) => Number(SEQ.exec(l)![1])),
    [1, 2, 3, 4, 5],
  );
  assert.equal(probes[0], 'Request timed out (seq=1)');
  assert.match(r.stdout.toString(), /\n5 packets transmitted, 4 received, 20% packet loss, time \d+ms\n/);
  assert.match(r.stdout.toString(), /\nlost 1, late 0, duplicates 0, reordered 0\n/);
  assert.match(r.stdout.toString(), /\nipdv \(jitter\) min\/mean\/median\/max\/stddev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms\n/);
  assert.equal(r.code, 0);
});

test('--json: one record per probe, then the summary, each a JSON line; duplicates and late replies as records of their own', async (t) => {
  const server = await fakeUdpServer((msg, rinfo, socket) => {
    socket.send(upcase(msg), rinfo.port, rinfo.address);
    if (replySeq(msg) === 2) socket.send(upcase(msg), rinfo.port, rinfo.address);
  });
  t.after(() => server.close());
  const r = await runCli(['ping', '127.0.0.1', '-p', String(server.port), '-c', '3', '-i', '0.02', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const records = r.stdout
    .toString()
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    records.map((x) => `${x.type}${x.seq ?? ''}`),
    ['probe1', 'probe2', 'duplicate2', 'probe3', 'summary'],
  );
  assert.equal(records.filter((x) => x.type === 'duplicate').length, 1);
  const summary = records.at(-1);
  assert.equal(summary.type, 'summary');
  assert.equal(summary.transmitted, 3);
  assert.equal(summary.received, 3);
  assert.equal(summary.duplicates, 1);
  assert.ok(summary.rtt.median > 0 && summary.ipdv.count === 2);
});

describe("ping --tcp and --sweep against the textbook's Python servers", () => {
  let tcp: Started;
  let udp: Started;
  before(async () => {
    [tcp, udp] = await Promise.all([
      startOnFreePort('tcp', 'python3', (port) => ['-u', `${TEXTBOOK}TCPServer.py`, String(port)], /The server is ready to receive\n/),
      startOnFreePort('udp', 'python3', (port) => ['-u', `${TEXTBOOK}UDPServer.py`, String(port)], /The server is ready to receive\n/),
    ]);
  });
  after(async () => {
    await Promise.all([tcp?.stop(), udp?.stop()]);
  });

  test('--tcp: a new connection per probe; handshake and first-byte times; summary', async () => {
    const r = await runCli(['ping', '127.0.0.1', '-p', String(tcp.port), '--tcp', '-c', '3', '-i', '0.05']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.toString().trimEnd().split('\n');
    assert.equal(lines[0], `PING 127.0.0.1:${tcp.port} (tcp): 56 data bytes, a new connection per probe`);
    for (const [i, line] of lines.slice(1, 4).entries()) {
      assert.match(
        line,
        new RegExp(`^56 bytes from 127\\.0\\.0\\.1:${tcp.port}: seq=${i + 1} connect=\\d+\\.\\d{3} ms first byte=\\d+\\.\\d{3} ms$`),
      );
    }
    assert.match(lines[5]!, /^3 probes, 3 replies, 0% without reply, time \d+ms$/);
    assert.match(lines[6]!, /^connect min\/mean\/median\/max\/stddev = /);
    assert.match(lines[7]!, /^first byte min\/mean\/median\/max\/stddev = /);
  });

  test('--tcp with a request over the 1,024 bytes TCPServer.py reads: the reply is marked incomplete', async () => {
    const r = await runCli(['ping', '127.0.0.1', '-p', String(tcp.port), '--tcp', '-c', '1', '-s', '3000', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const [probe] = r.stdout
      .toString()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(probe.status, 'reply');
    assert.equal(probe.complete, false);
    assert.ok(probe.bytes <= 1024, String(probe.bytes));
  });

  test('--sweep: UDPServer.py reads 2,048 bytes, so 2,000 is the largest whole reply and bigger ones come back cut', async () => {
    const r = await runCli(['ping', '127.0.0.1', '-p', String(udp.port), '--sweep', '1000:3000:500', '-W', '0.5']);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.toString();
    assert.match(out, /^2000 bytes: 2000 bytes from 127\.0\.0\.1:\d+ time=[\d.]+ ms$/m);
    assert.match(out, /^2500 bytes: truncated reply of 2048 bytes from 127\.0\.0\.1:\d+$/m);
    assert.match(out, /^3000 bytes: truncated reply of 2048 bytes/m);
    assert.match(out, /\nlargest datagram with a whole reply: 2000 bytes; first size without one: 2500 bytes\n$/);
  });
});

test('--sweep: usage errors exit 2; nothing answering exits 1', async () => {
  for (const spec of ['100', '10:100', '2000:1000', '100:70000']) {
    const r = await runCli(['ping', '127.0.0.1', '--sweep', spec]);
    assert.equal(r.code, 2, `${spec}: ${r.stderr}`);
    assert.match(r.stderr, /sweep/);
  }
  const silent = await fakeUdpServer();
  try {
    const r = await runCli(['ping', '127.0.0.1', '-p', String(silent.port), '--sweep', '100:200:100', '-W', '0.05']);
    assert.equal(r.code, 1);
    assert.match(r.stdout.toString(), /^100 bytes: no reply \(3 tries\)$/m);
    assert.match(r.stdout.toString(), /\nno size got a whole reply\n$/);
  } finally {
    await silent.close();
  }
});
