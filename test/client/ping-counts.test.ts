import assert from 'node:assert/strict';
import type dgram from 'node:dgram';
import { describe, test } from 'node:test';
import { durationStats, type ExtraReply, Pinger, type ProbeRecord, replySeq } from '../../src/client/ping.js';
import { upcase } from '../../src/codec/upcase.js';
import { fakeUdpServer } from '../helpers/programs.js';

/**
 * A UDP uppercase server with faults chosen by sequence number, so the counts
 * ping must report are known exactly: it drops every 10th datagram from seq 3,
 * answers every 10th from seq 5 twice, holds every 10th from seq 7 until it has
 * answered the next seq (reordered), and holds seqs 2 and 12 until seq + 18
 * arrives, well past their timeout (late).
 */
async function faultyServer() {
  const held = new Map<number, () => void>();
  const did = { dropped: [] as number[], duplicated: [] as number[], reordered: [] as number[], late: [] as number[] };
  const server = await fakeUdpServer((msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket) => {
    const seq = replySeq(msg)!;
    const reply = (): void => socket.send(upcase(msg), rinfo.port, rinfo.address);
    if (seq % 10 === 3) did.dropped.push(seq);
    else if (seq % 10 === 5) {
      reply();
      reply();
      did.duplicated.push(seq);
    } else if (seq % 10 === 7) {
      held.set(seq + 1, reply);
      did.reordered.push(seq);
    } else if (seq === 2 || seq === 12) {
      held.set(seq + 18, reply);
      did.late.push(seq);
    } else reply();
    // The held reply goes out after this seq's own.
    const release = held.get(seq);
    if (release !== undefined) {
      held.delete(seq);
      setImmediate(release);
    }
  });
  return { server, did };
}

describe('ping counts exactly what a faulty server did', () => {
  test('loss, duplicates, reordered and late replies, each counted separately; records in sequence order', async (t) => {
    const { server, did } = await faultyServer();
    t.after(() => server.close());
    const count = 50;
    const timeoutMs = 300;
    const pinger = new Pinger({ host: '127.0.0.1', port: server.port, count, interval: 0.02, timeout: timeoutMs / 1000 });
    const records: ProbeRecord[] = [];
    const extras: ExtraReply[] = [];
    pinger.on('probe', (r) => records.push(r));
    pinger.on('duplicate', (r) => extras.push(r));
    pinger.on('late', (r) => extras.push(r));
    const s = await pinger.run();

    assert.deepEqual(did.dropped, [3, 13, 23, 33, 43]);
    assert.deepEqual(did.late, [2, 12]);
    assert.equal(s.transmitted, count);
    assert.equal(s.lost, did.dropped.length);
    assert.equal(s.duplicates, did.duplicated.length);
    assert.equal(s.reordered, did.reordered.length);
    assert.equal(s.late, did.late.length);
    assert.equal(s.received, count - did.dropped.length - did.late.length);
    assert.equal(s.loss, ((did.dropped.length + did.late.length) * 100) / count);
    assert.equal(s.errors, 0);
    assert.equal(s.unexpected, 0);

    // One record per probe, in sequence order, whatever order the replies came in.
    assert.deepEqual(
      records.map((r) => r.seq),
      Array.from({ length: count }, (_, i) => i + 1),
    );
    const bySeq = (status: string) => records.filter((r) => r.status === status).map((r) => r.seq);
    assert.deepEqual(bySeq('timeout'), [2, 3, 12, 13, 23, 33, 43]);
    assert.deepEqual(
      records.filter((r) => r.reordered).map((r) => r.seq),
      did.reordered,
    );
    assert.deepEqual(
      extras.filter((e) => e.type === 'duplicate').map((e) => e.seq),
      did.duplicated,
    );
    assert.deepEqual(
      extras.filter((e) => e.type === 'late').map((e) => e.seq),
      did.late,
    );
    assert.ok(extras.filter((e) => e.type === 'late').every((e) => e.rtt > timeoutMs));

    // IPDV as irtt: RTT(seq) − RTT(seq − 1) where both were answered in time; the summary is over |IPDV|.
    for (const r of records) {
      const prev = records[r.seq - 2];
      if (r.status === 'reply' && prev?.status === 'reply') assert.equal(r.ipdv, r.rtt! - prev.rtt!);
      else assert.equal(r.ipdv, null, `seq ${r.seq}`);
    }
    // Sums in another order differ in the last bits: compare to 1e-9 ms.
    const near = (a: object | null, b: object | null, what: string): void => {
      assert.ok(a !== null && b !== null, what);
      for (const [k, v] of Object.entries(b)) assert.ok(Math.abs((a as Record<string, number>)[k]! - v) < 1e-9, `${what}.${k}`);
    };
    near(s.ipdv, durationStats(records.filter((r) => r.ipdv !== null).map((r) => Math.abs(r.ipdv!))), 'ipdv');
    const rtt = durationStats(records.filter((r) => r.status === 'reply').map((r) => r.rtt!))!;
    near(s.rtt, { min: rtt.min, avg: rtt.mean, median: rtt.median, max: rtt.max, stddev: rtt.stddev }, 'rtt');
  });

  test('durationStats: median of an even count, sample standard deviation', () => {
    assert.deepEqual(durationStats([4, 1, 3, 2]), { count: 4, min: 1, mean: 2.5, median: 2.5, max: 4, stddev: Math.sqrt(5 / 3) });
    assert.equal(durationStats([]), null);
    assert.equal(durationStats([7])!.stddev, 0);
  });
});
