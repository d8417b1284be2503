import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../errors.js';
import type { NormalizedBenchOptions } from './options.js';
import { runShard } from './run.js';

/**
 * One load thread of a run spread over worker threads (src/bench/threads.ts):
 * it runs its share of the connections as a one-thread run would, starts when
 * the main thread says `go` (every thread's connections open by then), sends
 * each interval's figures and latencies, and its result at the end.
 */
const port = parentPort!;
const { options } = workerData as { options: Omit<NormalizedBenchOptions, 'signal' | 'onProgress'> };
const stop = new AbortController();
let go: () => void = () => {};
const started = new Promise<void>((resolve) => {
  go = resolve;
});
port.on('message', (m: { type: 'go' | 'stop' }) => {
  if (m.type === 'stop') stop.abort();
  go();
});

try {
  const result = await runShard(
    { ...options, onProgress: undefined, signal: stop.signal },
    {
      ready: async () => {
        port.postMessage({ type: 'ready' });
        await started;
      },
      onInterval: (progress, recent) => port.postMessage({ type: 'interval', progress, histogram: recent.encode() }),
    },
  );
  port.postMessage({ type: 'result', result });
} catch (err) {
  // The same class, code, location and cause on the other side (src/errors.ts, as cluster workers do).
  port.postMessage({ type: 'error', error: serializeError(err) });
} finally {
  port.close();
}
