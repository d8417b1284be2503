import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { ClusterPrimary, RESTART_BACKOFF, resolveWorkerCount, restartDelay } from '../../src/server/cluster.js';
import { parseMetrics } from '../helpers/operator.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { until } from '../helpers/wait.js';

describe('restart backoff', () => {
  it('doubles from 100 ms up to 10 s', () => {
    const delays = Array.from({ length: 10 }, (_, i) => restartDelay(i + 1));
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    assert.equal(restartDelay(1000), 10_000);
    assert.equal(RESTART_BACKOFF.resetAfterMs, 30_000);
  });
});

describe('resolveWorkerCount', () => {
  it('turns auto into the CPUs available, and checks numbers', () => {
    assert.equal(resolveWorkerCount('auto'), os.availableParallelism());
    assert.equal(resolveWorkerCount(3), 3);
    assert.throws(() => resolveWorkerCount(0), { code: 'UPCASE_ERR_INVALID_ARG', message: /`workers`.*got `0`/ });
    assert.throws(() => new ClusterPrimary({ workers: 1.5 }), { code: 'UPCASE_ERR_INVALID_ARG' });
  });
});

describe('ClusterPrimary', () => {
  it('restarts a crashing worker with doubling delays, and starts over after a long enough run', async (t) => {
    const logs: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    // Incarnations 1-3 crash 20 ms after listening, the 4th after 700 ms (> resetAfterMs), the 5th stays.
    process.env.CRASH_PLAN = '20,20,20,700';
    const primary = new ClusterPrimary({
      workers: 1,
      server: { host: '127.0.0.1', port: 0, drainTimeout: 1 },
      logger,
      exec: fileURLToPath(new URL('../fixtures/cluster-worker.mjs', import.meta.url)),
      execArgv: [], // plain JavaScript: no TypeScript loader in the workers
      restartBackoff: { initialMs: 50, maxMs: 400, resetAfterMs: 500 },
      processMetrics: false,
    });
    t.after(() => primary.close());
    const { port } = await primary.start();
    let listened = 1;
    primary.on('worker', () => listened++);
    await until(() => listened === 5, 'the fifth worker', 60_000);

    const delays = logs.filter((e) => e.msg === 'worker died; restarting').map((e) => e.restartInMs);
    assert.deepEqual(delays, [50, 100, 200, 50]);
    assert.ok(primary.ready);
    assert.equal((await tcpRoundTrip(port, 'still serving')).toString(), 'STILL SERVING');
    const m = parseMetrics(await primary.metrics());
    assert.equal(m.get('upcase_worker_restarts_total'), 4);
    assert.equal(m.get('upcase_workers'), 1);
    assert.equal(m.get('upcase_connections_total'), 1);

    await primary.close();
    assert.equal(primary.state, 'closed');
    assert.equal(primary.ready, false);
    assert.equal(primary.forced, false);
    assert.deepEqual(primary.workerPids(), []);
  });
});
