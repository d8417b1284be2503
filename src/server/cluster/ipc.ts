import cluster from 'node:cluster';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { SerializedError } from '../../errors.js';
import type { RateLimitedLog } from '../../log.js';
import type { ConnectionsPage } from '../connections.js';
import type { ServerAddress } from '../server.js';

/**
 * What the cluster primary and its workers say to each other: the environment a
 * worker is forked with, and the messages over the IPC channel (errors travel as
 * {@link SerializedError}, so the primary rethrows a worker's error with its class and code).
 */

// Environment the primary gives each worker: the port to use (so that port 0 means one
// port for every worker and both transports) and the worker's slot number for logs.
const ENV_PORT = 'UPCASE_CLUSTER_PORT';
const ENV_SLOT = 'UPCASE_CLUSTER_WORKER';

/** The environment of the worker in `slot` (1..N) that serves `port`. */
export function workerEnv(port: number, slot: number): Record<string, string> {
  return { [ENV_PORT]: String(port), [ENV_SLOT]: String(slot) };
}

/** In a worker forked by `ClusterPrimary`: the port it must use. */
export function clusterWorkerPort(): number | undefined {
  const value = process.env[ENV_PORT];
  return cluster.isWorker && value !== undefined ? Number(value) : undefined;
}

/** In a worker forked by `ClusterPrimary`: its slot, 1..N, stable across restarts. */
export function clusterWorkerSlot(): number | undefined {
  const value = process.env[ENV_SLOT];
  return cluster.isWorker && value !== undefined ? Number(value) : undefined;
}

/** Prometheus metrics as prom-client's `getMetricsAsJSON()` gives them. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

// Namespaced (`upcase`) so they cannot clash with anyone else's cluster messages.
/** A worker's message to the primary. */
export type ToPrimary =
  | { upcase: 'listening'; address: ServerAddress }
  | { upcase: 'listen-error'; error: SerializedError }
  | { upcase: 'draining' }
  | { upcase: 'metrics'; id: number; metrics: MetricsJson }
  | { upcase: 'connections'; id: number; page: ConnectionsPage };
/** The primary's message to a worker. */
export type ToWorker = { upcase: 'shutdown' } | { upcase: 'metrics'; id: number } | { upcase: 'connections'; id: number; limit: number };
/** A reply to a request the primary sent to every worker (metrics, connections). */
export type Answer = Extract<ToPrimary, { id: number }>;

/** True if `message` is one of ours (anything else on the channel is someone else's). */
export function isMessage<T extends { upcase: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { upcase?: unknown }).upcase === 'string';
}

/** A worker that can be asked something. */
export interface Askable {
  /** Its slot, 1..N. */
  slot: number;
  /** Anything with `send` (a node:cluster `Worker`); answers are matched to it by identity. */
  worker: { send(message: ToWorker): unknown };
}

/**
 * Requests the primary sends to every worker at once, and the answers matched to them by id.
 * A worker that does not answer within `timeoutMs` is left out (and a rate-limited warning says so).
 */
export class WorkerRequests {
  private nextId = 0;
  private readonly pending = new Map<number, (worker: object, answer: Answer) => void>();

  constructor(
    private readonly timeoutMs: number,
    private readonly warnings: RateLimitedLog,
  ) {}

  /** Passes a worker's answer to the request waiting for it; an answer nobody waits for is dropped. */
  answer(worker: object, message: Answer): void {
    this.pending.get(message.id)?.(worker, message);
  }

  /** Sends `request(id)` to each of `workers`; resolves with the answers that came in time. */
  async ask(workers: Askable[], request: (id: number) => ToWorker, what: string): Promise<Array<{ slot: number; answer: Answer }>> {
    const id = this.nextId++;
    const answers: Array<{ slot: number; answer: Answer }> = [];
    await new Promise<void>((resolve) => {
      const waiting = new Map<object, number>(workers.map((w) => [w.worker, w.slot]));
      const finish = (): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve();
      };
      const timer = setTimeout(() => {
        this.warnings.warn(`cluster:${what}_timeout`, { workers: waiting.size }, `worker did not answer the ${what} request in time`);
        finish();
      }, this.timeoutMs);
      this.pending.set(id, (worker, answer) => {
        const slot = waiting.get(worker);
        if (slot === undefined) return;
        waiting.delete(worker);
        answers.push({ slot, answer });
        if (waiting.size === 0) finish();
      });
      for (const { worker } of workers) worker.send(request(id));
      if (waiting.size === 0) finish();
    });
    return answers;
  }
}
