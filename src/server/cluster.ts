/**
 * Multi-core serving with `node:cluster`. The primary forks N workers; each one
 * runs a whole `UpcaseServer` (TCP and UDP). The listening sockets are the
 * primary's and shared with the workers: every worker accepts on the TCP socket,
 * so the kernel gives each connection to one of them (`SCHED_NONE`), and the UDP
 * socket is one shared handle that every worker reads, so the kernel gives each
 * datagram to whichever worker reads first. The primary restarts dead workers with backoff,
 * aggregates their metrics, and drains them on shutdown.
 *
 * The pieces, in src/server/cluster/:
 * - `primary.ts`: {@link ClusterPrimary}, which puts the others together;
 * - `supervisor.ts`: forking, restarts with backoff, SIGHUP to the workers, stopping them;
 * - `ipc.ts`: what primary and workers say to each other (environment, messages, requests);
 * - `metrics.ts`: the primary's own metrics, and the workers' aggregated;
 * - `worker.ts`: {@link ClusterWorker}, the worker's side.
 *
 * Library use (src/server/process.ts does exactly this for `upcase serve`):
 * ```ts
 * if (cluster.isPrimary) await new ClusterPrimary({ workers: 4, server: opts }).start();
 * else await new ClusterWorker(new UpcaseServer({ ...opts, port: clusterWorkerPort() ?? opts.port })).listen();
 * ```
 */
export { clusterWorkerPort, clusterWorkerSlot } from './cluster/ipc.js';
export { type ClusterOptions, ClusterPrimary, type ClusterState } from './cluster/primary.js';
export {
  type ClusterModule,
  RESTART_BACKOFF,
  type RestartBackoff,
  resolveWorkerCount,
  restartDelay,
  type WorkerHandle,
} from './cluster/supervisor.js';
export { ClusterWorker, type PrimaryChannel } from './cluster/worker.js';
