// Worker supervision (src/server/cluster/supervisor.ts) through ClusterPrimary, with node:cluster stood in
// for (fake-cluster.ts) and the clock mocked: restarts, their backoff, and the start's failures, without forking.
// The same with real worker processes: test/server/cluster.test.ts and test/adversarial/worker-death.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListenError, serializeError } from '../../../src/errors.js';
import { ClusterPrimary } from '../../../src/server/cluster.js';
import { captureLogger } from '../../helpers/logs.js';
import { until, within } from '../../helpers/wait.js';
import { FakeCluster, type FakeWorker } from './fake-cluster.js';

function primaryOf(options: { workers: number; backoff?: { initialMs: number; maxMs: number; resetAfterMs: number } }) {
  const log = captureLogger('info');
  const cluster = new FakeCluster();
  const primary = new ClusterPrimary({
    workers: options.workers,
    server: { host: '127.0.0.1', port: 0, drainTimeout: 1 },
    logger: log.logger,
    cluster,
    processMetrics: false,
    restartBackoff: options.backoff,
  });
  return { primary, cluster, log };
}

const portOf = (w: FakeWorker): number => Number(w.env.UPCASE_CLUSTER_PORT);

describe('Supervisor', () => {
  it('forks one worker per slot on one port, with the kernel handing out connections (SCHED_NONE)', async (t) => {
    const { primary, cluster } = primaryOf({ workers: 3 });
    t.after(() => primary.close());
    const started = primary.start();
    await until(() => cluster.forked.length === 3, 'three workers forked');
    assert.equal(cluster.schedulingPolicy, cluster.SCHED_NONE);
    assert.deepEqual(
      cluster.forked.map((w) => w.env.UPCASE_CLUSTER_WORKER),
      ['1', '2', '3'],
    );
    const port = portOf(cluster.forked[0]!);
    assert.ok(port > 0 && cluster.forked.every((w) => portOf(w) === port), 'one port, picked by the primary');
    for (const w of cluster.forked) w.listening(port);
    assert.equal((await started).port, port);
    for (const w of cluster.forked) w.exit(0);
  });

  it('restarts a dead worker after the backoff, doubling per crash, and starting over after a long run', async (t) => {
    const { primary, cluster, log } = primaryOf({ workers: 2, backoff: { initialMs: 50, maxMs: 150, resetAfterMs: 1000 } });
    t.after(async () => {
      t.mock.timers.reset();
      const closed = primary.close();
      for (const w of cluster.forked) w.exit(0);
      await closed;
    });
    const started = primary.start();
    await until(() => cluster.forked.length === 2, 'two workers forked');
    for (const w of cluster.forked) w.listening(portOf(w));
    await started;
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    const restarts = (): unknown[] => log.lines.filter((l) => l.msg === 'worker died; restarting').map((l) => l.restartInMs);

    // Crash after crash of slot 1: 50, 100, then 150 (the cap) ms; slot 2 is untouched.
    for (const [crash, delay] of [50, 100, 150].entries()) {
      const dying = cluster.worker(1);
      dying.listening(portOf(dying));
      t.mock.timers.tick(10);
      dying.exit(3);
      assert.equal(primary.ready, true, 'one worker listening keeps the instance ready');
      const forked = cluster.forked.length;
      t.mock.timers.tick(delay - 1);
      assert.equal(cluster.forked.length, forked, `crash ${crash + 1}: not before ${delay} ms`);
      t.mock.timers.tick(1);
      assert.equal(cluster.forked.length, forked + 1, `crash ${crash + 1}: restarted after ${delay} ms`);
      assert.equal(cluster.forked.at(-1)!.env.UPCASE_CLUSTER_WORKER, '1');
    }
    // A worker that stayed up resetAfterMs starts the doubling over.
    const steady = cluster.worker(1);
    steady.listening(portOf(steady));
    t.mock.timers.tick(1000);
    steady.exit(null, 'SIGKILL');
    t.mock.timers.tick(50);
    assert.deepEqual(restarts(), [50, 100, 150, 50]);
    assert.deepEqual(cluster.worker(2).signals, []);
    assert.equal(cluster.forked.length, 2 + 4);
    const deaths = log.lines.filter((l) => l.msg === 'worker died; restarting');
    assert.deepEqual(deaths.at(-1), { ...deaths.at(-1), worker: 1, code: null, signal: 'SIGKILL' });
  });

  it('cancels a restart still due when the drain starts', async (t) => {
    const { primary, cluster, log } = primaryOf({ workers: 2, backoff: { initialMs: 1, maxMs: 1, resetAfterMs: 1000 } });
    t.after(() => primary.close());
    const started = primary.start();
    await until(() => cluster.forked.length === 2, 'two workers forked');
    for (const w of cluster.forked) w.listening(portOf(w));
    await started;
    cluster.worker(1).exit(3);
    // Its restart is due in 1 ms: the drain starts first, and cancels it.
    const closed = primary.close();
    cluster.worker(2).exit(0);
    await within(5000, 'the close', closed);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(cluster.forked.length, 2);
    assert.equal(primary.forced, false);
    assert.deepEqual(
      log.lines.filter((l) => l.msg === 'worker exited').map((l) => l.worker),
      [2],
    );
  });

  it('a worker that cannot listen fails the start with its own error, and the others are told to stop', async () => {
    const { primary, cluster } = primaryOf({ workers: 2 });
    const started = primary.start();
    await until(() => cluster.forked.length === 2, 'two workers forked');
    const [one, two] = cluster.forked as [FakeWorker, FakeWorker];
    one.listening(portOf(one));
    const error = new ListenError('port 1 is in use', { transport: 'tcp', address: '127.0.0.1', port: 1 }, undefined, 'EADDRINUSE');
    two.say({ upcase: 'listen-error', error: serializeError(error) });
    // The primary stops the others before it rejects; the test plays the workers leaving.
    await until(() => one.sent.length > 0, 'the shutdown request');
    assert.deepEqual(one.sent, [{ upcase: 'shutdown' }]);
    one.exit(0);
    two.exit(1);
    await assert.rejects(started, (err: Error) => err instanceof ListenError && (err as ListenError).port === 1);
    assert.equal(primary.state, 'closed');
  });

  it('close() during the start rejects the start with UPCASE_ERR_CLOSED instead of leaving it pending', async () => {
    const { primary, cluster } = primaryOf({ workers: 2 });
    const started = primary.start();
    await until(() => cluster.forked.length === 2, 'two workers forked');
    cluster.forked[0]!.listening(portOf(cluster.forked[0]!));
    const closed = primary.close();
    for (const w of cluster.forked) w.exit(0);
    await within(5000, 'the start to settle', assert.rejects(started, { code: 'UPCASE_ERR_CLOSED' }));
    await closed;
    assert.equal(primary.state, 'closed');
  });
});
