/**
 * handleConnection over an in-memory Duplex whose "peer" we control: it can
 * stop taking our replies entirely, which a real socket only shows through
 * kernel buffers.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { handleConnection } from '../../src/tcp/connection.js';
import { createStats } from '../../src/stats.js';
import { captureLogger } from '../helpers/logs.js';
import { until } from '../helpers/wait.js';

/** A Duplex whose writes complete only while `reading` is true (a peer that may stop reading). */
class Peer extends Duplex {
  reading = true;
  readonly written: Buffer[] = [];
  private held: Array<() => void> = [];

  constructor(writableHighWaterMark = 16 * 1024) {
    super({ allowHalfOpen: true, writableHighWaterMark });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(Buffer.from(chunk));
    if (this.reading) cb();
    else this.held.push(() => cb());
  }

  resumeReading(): void {
    this.reading = true;
    const held = this.held;
    this.held = [];
    for (const cb of held) cb();
  }

  output(): string {
    return Buffer.concat(this.written).toString();
  }
}

function serve(peer: Peer, opts: { idleTimeoutMs?: number; writeTimeoutMs?: number } = {}) {
  const stats = createStats();
  const { logger } = captureLogger();
  handleConnection(peer, { stats, logger, ...opts });
  const closed = new Promise<number>((resolve) => peer.on('close', () => resolve(performance.now())));
  return { stats, closed };
}

describe('handleConnection timeouts', () => {
  test('replies owed after the peer’s end, to a peer that never reads, are bounded by the write timeout', async () => {
    // The write is accepted (below the high-water mark), so no backpressure is ever signalled;
    // only the end of input shows that replies are still owed.
    const peer = new Peer(1024 * 1024);
    peer.reading = false;
    const { stats, closed } = serve(peer, { writeTimeoutMs: 200 });
    peer.push(Buffer.from('owed reply'));
    peer.push(null);
    const start = performance.now();
    const at = await Promise.race([
      closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error('not closed in 5 s')), 5000)),
    ]);
    assert.ok(at - start >= 150, `closed after ${at - start} ms`);
    assert.equal(stats.writeTimeouts, 1);
    assert.equal(peer.output(), 'OWED REPLY');
  });

  test('a reply the transport did not take at once starts the write timeout, below the high-water mark too', async () => {
    // The rule of docs/protocol.md, as native/tcp_serve.c applies it: the timer runs while
    // bytes are owed, not only once 64 KiB are queued. The peer keeps its input open.
    const peer = new Peer(1024 * 1024);
    peer.reading = false;
    const { stats, closed } = serve(peer, { writeTimeoutMs: 200 });
    peer.push(Buffer.from('a small reply'));
    const at = await Promise.race([
      closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error('not closed in 5 s')), 5000)),
    ]);
    assert.ok(at > 0);
    assert.equal(stats.writeTimeouts, 1);
  });

  test('owed bytes taken later without a completion callback end the stall: no write timeout', async () => {
    // The lone reply is written without a callback (the cheap case); the peer takes it
    // inside the write timeout, and nothing else is written: the timer must not fire.
    const peer = new Peer();
    peer.reading = false;
    const { stats } = serve(peer, { writeTimeoutMs: 250 });
    peer.push(Buffer.from('late'));
    await new Promise((r) => setTimeout(r, 100));
    peer.resumeReading();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(stats.writeTimeouts, 0);
    assert.equal(peer.destroyed, false);
    assert.equal(peer.output(), 'LATE');
    peer.destroy();
  });

  test('a peer that resumes reading in time is not cut off', async () => {
    const peer = new Peer(4);
    peer.reading = false;
    const { stats } = serve(peer, { writeTimeoutMs: 300 });
    peer.push(Buffer.from('backed up'));
    await new Promise((r) => setTimeout(r, 100));
    peer.resumeReading();
    peer.push(Buffer.from(' and more'));
    peer.push(null);
    await until(() => peer.writableFinished, 'the reply to finish', 5000);
    assert.equal(peer.output(), 'BACKED UP AND MORE');
    assert.equal(stats.writeTimeouts, 0);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(stats.writeTimeouts, 0);
  });

  test('with writes stuck, the idle timeout fires once, on time, counting from the last progress', async () => {
    const peer = new Peer(4);
    const { stats, closed } = serve(peer, { idleTimeoutMs: 300 });
    peer.reading = false;
    peer.push(Buffer.from('stuck reply'));
    const start = performance.now();
    const at = await closed;
    assert.ok(at - start >= 270 && at - start <= 450, `closed after ${(at - start).toFixed(0)} ms, want about 300`);
    assert.equal(stats.idleTimeouts, 1);
  });

  test('write progress counts as traffic for the idle timeout', async () => {
    const peer = new Peer(4);
    const { stats } = serve(peer, { idleTimeoutMs: 300 });
    // Input stops at once, but the peer takes one reply every 100 ms for 600 ms.
    peer.reading = false;
    for (let i = 0; i < 6; i++) peer.push(Buffer.from('x'));
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const held = (peer as unknown as { held: Array<() => void> }).held.shift();
      held?.();
    }
    assert.equal(stats.idleTimeouts, 0);
    assert.equal(peer.destroyed, false);
    peer.destroy();
  });

  test('progress of a lone reply written without a completion callback still counts as traffic', async () => {
    // The only reply goes into an empty write queue, so it is written without a callback
    // (the common, cheap case); the peer takes it late, inside the idle period.
    const peer = new Peer();
    const { stats, closed } = serve(peer, { idleTimeoutMs: 300 });
    peer.reading = false;
    const start = performance.now();
    peer.push(Buffer.from('lone'));
    await new Promise((r) => setTimeout(r, 250));
    peer.resumeReading();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(peer.destroyed, false, 'closed at the first expiry although the reply made progress');
    assert.equal(stats.idleTimeouts, 0);
    const at = await closed;
    assert.equal(stats.idleTimeouts, 1);
    assert.ok(at - start >= 550 && at - start <= 1000, `closed after ${(at - start).toFixed(0)} ms, want about 600`);
    assert.equal(peer.output(), 'LONE');
  });

  test('connections with the same idle timeout time out each on its own, in order of their last traffic', async () => {
    // They share one timer (the idle sweep): the one kept busy must outlive the silent ones, and
    // each silent one must close one period after its own last traffic.
    const silentA = new Peer();
    const busy = new Peer();
    const a = serve(silentA, { idleTimeoutMs: 300 });
    const b = serve(busy, { idleTimeoutMs: 300 });
    const start = performance.now();
    await new Promise((r) => setTimeout(r, 150));
    const silentB = new Peer();
    const c = serve(silentB, { idleTimeoutMs: 300 });
    const startB = performance.now();
    const ticking = setInterval(() => busy.push(Buffer.from('x')), 100);
    try {
      const atA = await a.closed;
      const atB = await c.closed;
      assert.ok(atA - start >= 270 && atA - start <= 450, `first silent one closed after ${(atA - start).toFixed(0)} ms, want about 300`);
      assert.ok(
        atB - startB >= 270 && atB - startB <= 450,
        `second closed ${(atB - startB).toFixed(0)} ms after it opened, want about 300`,
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(busy.destroyed, false, 'the busy connection was closed as idle');
      assert.equal(a.stats.idleTimeouts + b.stats.idleTimeouts + c.stats.idleTimeouts, 2);
    } finally {
      clearInterval(ticking);
      busy.destroy();
    }
    assert.equal(busy.output(), 'X'.repeat(busy.output().length));
  });

  test('a stream that cannot be reset (TLS) is destroyed instead, without throwing', async () => {
    const peer = new Peer(4);
    (peer as unknown as { resetAndDestroy: () => void }).resetAndDestroy = () => {
      throw Object.assign(new Error('Invalid handle type'), { code: 'ERR_INVALID_HANDLE_TYPE' });
    };
    peer.reading = false;
    const { stats, closed } = serve(peer, { writeTimeoutMs: 100 });
    peer.push(Buffer.from('never read'));
    await closed;
    assert.equal(stats.writeTimeouts, 1);
    assert.equal(peer.destroyed, true);
  });
});
