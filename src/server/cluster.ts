import cluster, { type Worker } from 'node:cluster';
import { EventEmitter, once } from 'node:events';
import os from 'node:os';
import type { Logger } from 'pino';
import {
  AggregatorRegistry,
  collectDefaultMetrics,
  Counter,
  Gauge,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import { ClosedError, deserializeError, type SerializedError, serializeError, WorkerError } from '../errors.js';
import { checkInteger, SERVER_DEFAULTS, type ServerOptions } from '../options.js';
import { type ConnectionsPage, type ConnectionsQuery, mergePages } from './connections.js';
import { RateLimitedLog, silentLogger } from '../log.js';
import type { MetricsSource } from './metrics.js';
import { type ServerAddress, UpcaseServer } from './server.js';

/**
 * Multi-core serving with `node:cluster`. The primary forks N workers; each one
 * runs a whole {@link UpcaseServer} (TCP and UDP). The listening sockets are the
 * primary's and shared with the workers: every worker accepts on the TCP socket,
 * so the kernel gives each connection to one of them (`SCHED_NONE`), and the UDP
 * socket is one shared handle that every worker reads, so the kernel gives each
 * datagram to whichever worker reads first. The primary restarts dead workers with backoff,
 * aggregates their metrics, and drains them on shutdown.
 *
 * Library use (the CLI does exactly this):
 * ```ts
 * if (cluster.isPrimary) await new ClusterPrimary({ workers: 4, server: opts }).start();
 * else await new ClusterWorker(new UpcaseServer({ ...opts, port: clusterWorkerPort() ?? opts.port })).listen();
 * ```
 */

/** Restart backoff for dead workers, in milliseconds. */
export const RESTART_BACKOFF = {
  initialMs: 100, // first restart after a crash
  maxMs: 10_000, // the delay doubles per consecutive crash, up to this
  resetAfterMs: 30_000, // a worker that stayed up this long starts the doubling over
} as const;

/** How long the primary waits before restarting a dead worker, in milliseconds. */
export type RestartBackoff = { initialMs: number; maxMs: number; resetAfterMs: number };

/** The delay before restart number `consecutiveFailures` (1 = first crash) of one worker slot. */
export function restartDelay(consecutiveFailures: number, backoff: RestartBackoff = RESTART_BACKOFF): number {
  const exponent = Math.max(0, consecutiveFailures - 1);
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(exponent, 30));
}

/** `auto` = the number of CPUs this process may use (`os.availableParallelism()`). */
export function resolveWorkerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? os.availableParallelism() : checkInteger('workers', workers, 1, 1024);
}

// Environment the primary gives each worker: the port to use (so that port 0 means one
// port for every worker and both transports) and the worker's slot number for logs.
const ENV_PORT = 'UPCASE_CLUSTER_PORT';
const ENV_SLOT = 'UPCASE_CLUSTER_WORKER';

/** In a worker forked by {@link ClusterPrimary}: the port it must use. */
export function clusterWorkerPort(): number | undefined {
  const value = process.env[ENV_PORT];
  return cluster.isWorker && value !== undefined ? Number(value) : undefined;
}

/** In a worker forked by {@link ClusterPrimary}: its slot, 1..N, stable across restarts. */
export function clusterWorkerSlot(): number | undefined {
  const value = process.env[ENV_SLOT];
  return cluster.isWorker && value !== undefined ? Number(value) : undefined;
}

// IPC messages. Namespaced so they cannot clash with anyone else's cluster messages.
type ToPrimary =
  | { upcase: 'listening'; address: ServerAddress }
  | { upcase: 'listen-error'; error: SerializedError }
  | { upcase: 'draining' }
  | { upcase: 'metrics'; id: number; metrics: MetricObjectWithValues<MetricValue<string>>[] }
  | { upcase: 'connections'; id: number; page: ConnectionsPage };
type ToWorker = { upcase: 'shutdown' } | { upcase: 'metrics'; id: number } | { upcase: 'connections'; id: number; limit: number };
/** A reply to a request the primary sent to every worker (metrics, connections). */
type Answer = Extract<ToPrimary, { id: number }>;

function isMessage<T extends { upcase: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { upcase?: unknown }).upcase === 'string';
}

/** Options of {@link ClusterPrimary}. */
export interface ClusterOptions {
  /** Number of workers, >= 1. */
  workers: number;
  /**
   * The server options the workers use (the primary reads `host`, `port`, `tcp`,
   * `udp` to pick one port for all workers when `port` is 0, and `drainTimeout`).
   */
  server?: ServerOptions;
  /** A pino logger; default silent. */
  logger?: Logger;
  /** Restart backoff; default {@link RESTART_BACKOFF}. */
  restartBackoff?: Partial<RestartBackoff>;
  /** Seconds to wait for workers past `drainTimeout` before killing them. Default 5. */
  shutdownGrace?: number;
  /** Worker script, arguments and node flags (`cluster.setupPrimary`); default: this process's own. */
  exec?: string;
  args?: string[];
  execArgv?: string[];
  /** Sum the primary's own process metrics into the totals too. Default true. */
  processMetrics?: boolean;
  /** Milliseconds a worker has to answer a metrics request. Default 2000. */
  metricsTimeoutMs?: number;
}

/** A cluster's lifecycle: `new` → `starting` → `listening` → `draining` → `closed`. */
export type ClusterState = 'new' | 'starting' | 'listening' | 'draining' | 'closed';
type SlotState = 'starting' | 'listening' | 'draining' | 'down';

interface Slot {
  index: number; // 1..N
  worker: Worker | null;
  state: SlotState;
  listeningAt: number;
  failures: number; // consecutive crashes, for the backoff
  restartTimer: NodeJS.Timeout | null;
}

/**
 * The primary of a worker cluster. Events: `'listening'` (address), `'worker'`
 * ({ slot, pid }) each time a worker listens, `'exit'` ({ slot, pid, code, signal }),
 * `'draining'`, `'close'`.
 */
export class ClusterPrimary extends EventEmitter implements MetricsSource {
  readonly workers: number;
  private readonly options: ClusterOptions;
  private readonly logger: Logger;
  private readonly warnings: RateLimitedLog;
  private readonly backoff: RestartBackoff;
  private readonly slots: Slot[] = [];
  private readonly registry = new Registry();
  private stateValue: ClusterState = 'new';
  private bound: ServerAddress | null = null;
  private port = 0;
  private restarts = 0;
  private forcedValue = false;
  private closing: Promise<void> | null = null;
  private nextRequestId = 0;
  private readonly pending = new Map<number, (worker: Worker, answer: Answer) => void>();
  private startup: { resolve: (address: ServerAddress) => void; reject: (err: Error) => void } | null = null;

  constructor(options: ClusterOptions) {
    super();
    if (!cluster.isPrimary) throw new WorkerError('ClusterPrimary must run in the cluster primary');
    this.workers = checkInteger('workers', options.workers, 1, 1024);
    this.options = options;
    this.logger = options.logger ?? silentLogger();
    this.warnings = new RateLimitedLog(this.logger);
    this.backoff = { ...RESTART_BACKOFF, ...options.restartBackoff };
    const self = this;
    const registers = [this.registry];
    new Gauge({
      name: 'upcase_workers',
      help: 'Workers listening now (cluster mode).',
      registers,
      collect() {
        this.set(self.listeningCount());
      },
    });
    new Gauge({
      name: 'upcase_workers_configured',
      help: 'Workers the cluster runs when all are up (--workers).',
      registers,
      collect() {
        this.set(self.workers);
      },
    });
    new Counter({
      name: 'upcase_worker_restarts_total',
      help: 'Workers restarted after they died (cluster mode).',
      registers,
      collect() {
        this.reset();
        this.inc(self.restarts);
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  get state(): ClusterState {
    return this.stateValue;
  }

  /**
   * Ready to take traffic: startup done (every worker listened once), not draining,
   * and at least one worker listening now. One restarting worker does not take the
   * whole instance out of a load balancer.
   */
  get ready(): boolean {
    return this.stateValue === 'listening' && this.listeningCount() > 0;
  }

  /** True if shutdown had to kill workers that did not finish in time. */
  get forced(): boolean {
    return this.forcedValue;
  }

  /**
   * Passes SIGHUP (reload the TLS certificate) to the workers that listen or drain, and
   * returns how many. A worker still starting is left alone: the signal could arrive
   * before it handles it and end it, and it reads the certificate files as it starts anyway.
   */
  hangup(): number {
    let told = 0;
    for (const slot of this.slots) {
      const pid = slot.worker?.process.pid;
      if (pid === undefined || (slot.state !== 'listening' && slot.state !== 'draining')) continue;
      try {
        process.kill(pid, 'SIGHUP');
        told++;
      } catch {
        // It has just died; its replacement reads the files when it starts.
      }
    }
    return told;
  }

  /** Process ids of the live workers. */
  workerPids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid === undefined ? [] : [s.worker.process.pid]));
  }

  address(): ServerAddress {
    if (this.bound === null) throw new ClosedError('the cluster is not listening');
    return this.bound;
  }

  /**
   * Forks the workers and resolves once all of them listen. If a worker fails to
   * listen (e.g. EADDRINUSE), the others are stopped and this rejects with its error.
   */
  async start(): Promise<ServerAddress> {
    if (this.stateValue !== 'new') throw new ClosedError(`cannot start: the cluster is ${this.stateValue}`);
    this.stateValue = 'starting';
    const server = this.options.server ?? {};
    this.port = server.port ?? SERVER_DEFAULTS.port;
    if (this.port === 0) {
      // Let the OS pick a port free for both TCP and UDP, then give every worker that
      // number. (Workers asking for port 0 themselves would share TCP but not UDP.)
      const probe = new UpcaseServer({ host: server.host, port: 0, tcp: server.tcp, udp: server.udp });
      this.port = (await probe.listen()).port;
      await probe.close();
    }
    // The kernel hands out connections (SCHED_NONE: every worker accepts on the shared socket),
    // not the primary. With round-robin, the primary accepts and passes each connection to a
    // worker and keeps it until that worker confirms; a worker killed in between never does, and
    // the connection stays in the primary forever, its client hung (docs/operations.md, Workers).
    // Set before the first fork: node:cluster freezes the policy then.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    const { exec, args, execArgv } = this.options;
    if (exec !== undefined || args !== undefined || execArgv !== undefined) cluster.setupPrimary({ exec, args, execArgv });
    cluster.on('message', this.onMessage);
    const started = new Promise<ServerAddress>((resolve, reject) => {
      this.startup = { resolve, reject };
    });
    for (let index = 1; index <= this.workers; index++) {
      const slot: Slot = { index, worker: null, state: 'down', listeningAt: 0, failures: 0, restartTimer: null };
      this.slots.push(slot);
      this.fork(slot);
    }
    try {
      this.bound = await started;
    } catch (err) {
      await this.close();
      throw err;
    }
    this.stateValue = 'listening';
    this.logger.info({ workers: this.workers, port: this.bound.port }, 'all workers listening');
    this.emit('listening', this.bound);
    return this.bound;
  }

  private fork(slot: Slot): void {
    slot.restartTimer = null;
    const worker = cluster.fork({ [ENV_PORT]: String(this.port), [ENV_SLOT]: String(slot.index) });
    slot.worker = worker;
    slot.state = 'starting';
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    // A worker that cannot be reached (it is dying) emits 'error' on send; its 'exit' follows.
    worker.on('error', (err: NodeJS.ErrnoException) => this.logger.debug({ worker: slot.index, code: err.code }, 'worker ipc error'));
  }

  private readonly onMessage = (worker: Worker, message: unknown): void => {
    if (!isMessage<ToPrimary>(message)) return;
    const slot = this.slots.find((s) => s.worker === worker);
    if (slot === undefined) return;
    switch (message.upcase) {
      case 'listening':
        slot.state = 'listening';
        slot.listeningAt = Date.now();
        this.logger.info({ worker: slot.index, workerPid: worker.process.pid }, 'worker listening');
        this.emit('worker', { slot: slot.index, pid: worker.process.pid });
        if (this.startup !== null && this.slots.every((s) => s.state === 'listening')) {
          this.startup.resolve(message.address);
          this.startup = null;
        }
        break;
      case 'listen-error': {
        // The worker's error as it was (class, code, address, port, OS code), so the caller sees what a single process would.
        const error = deserializeError(message.error);
        this.logger.error({ worker: slot.index, workerPid: worker.process.pid, code: error.code }, error.message);
        if (this.startup !== null) {
          this.startup.reject(error);
          this.startup = null;
        }
        break;
      }
      case 'draining':
        slot.state = 'draining';
        break;
      case 'metrics':
      case 'connections':
        this.pending.get(message.id)?.(worker, message);
        break;
    }
  };

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const wasListening = slot.state === 'listening';
    slot.state = 'down';
    const pid = worker.process.pid;
    this.emit('exit', { slot: slot.index, pid, code, signal });
    if (this.stateValue === 'draining' || this.stateValue === 'closed') {
      this.logger.info({ worker: slot.index, workerPid: pid, code, signal }, 'worker exited');
      if (this.slots.every((s) => s.worker === null)) this.emit('all-exited');
      return;
    }
    if (this.startup !== null) {
      this.startup.reject(new WorkerError(`worker ${slot.index} exited during startup (${signal ?? `code ${code}`})`));
      this.startup = null;
      return;
    }
    if (this.stateValue !== 'listening') return;
    // Count consecutive crashes; a worker that stayed up long enough starts over.
    if (wasListening && Date.now() - slot.listeningAt >= this.backoff.resetAfterMs) slot.failures = 0;
    slot.failures++;
    const delay = restartDelay(slot.failures, this.backoff);
    this.logger.warn({ worker: slot.index, workerPid: pid, code, signal, restartInMs: delay }, 'worker died; restarting');
    slot.restartTimer = setTimeout(() => {
      if (this.stateValue !== 'listening') return;
      this.restarts++;
      this.fork(slot);
    }, delay);
    slot.restartTimer.unref();
  }

  private listeningCount(): number {
    return this.slots.filter((s) => s.state === 'listening').length;
  }

  /** Prometheus content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The metrics of every worker plus the primary's, aggregated by prom-client's
   * `AggregatorRegistry.aggregate`: counters and gauges are summed per label set.
   * A worker that does not answer within `metricsTimeoutMs` is left out.
   * (Not `AggregatorRegistry#clusterMetrics()`: it also asks workers that are still
   * starting, which cannot answer yet, and then fails the whole scrape after 5 s.)
   */
  async metrics(): Promise<string> {
    const answers: MetricObjectWithValues<MetricValue<string>>[][] = [];
    for (const { answer } of await this.ask((id) => ({ upcase: 'metrics', id }), 'metrics')) {
      if (answer.upcase === 'metrics') answers.push(answer.metrics);
    }
    answers.push(await this.registry.getMetricsAsJSON());
    return AggregatorRegistry.aggregate(answers).metrics();
  }

  /**
   * One page of the open TCP connections of every worker, oldest first, each with its
   * worker slot. A worker that does not answer within `metricsTimeoutMs` is left out.
   */
  async connections(query: ConnectionsQuery): Promise<ConnectionsPage> {
    const pages: Array<{ worker: number; page: ConnectionsPage }> = [];
    // Each worker's oldest offset + limit hold the page (see mergePages).
    const limit = query.offset + query.limit;
    for (const { slot, answer } of await this.ask((id) => ({ upcase: 'connections', id, limit }), 'connections')) {
      if (answer.upcase === 'connections') pages.push({ worker: slot, page: answer.page });
    }
    return mergePages(pages, query);
  }

  /** Sends a request to every listening worker; resolves with the answers that came in time. */
  private async ask(request: (id: number) => ToWorker, what: string): Promise<Array<{ slot: number; answer: Answer }>> {
    const slots = this.slots.filter((s) => s.worker !== null && s.state !== 'starting' && s.worker.isConnected());
    const id = this.nextRequestId++;
    const answers: Array<{ slot: number; answer: Answer }> = [];
    await new Promise<void>((resolve) => {
      const waiting = new Map(slots.map((s) => [s.worker as Worker, s.index]));
      const finish = (): void => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve();
      };
      const timer = setTimeout(() => {
        this.warnings.warn(`cluster:${what}_timeout`, { workers: waiting.size }, `worker did not answer the ${what} request in time`);
        finish();
      }, this.options.metricsTimeoutMs ?? 2000);
      this.pending.set(id, (worker, answer) => {
        const slot = waiting.get(worker);
        if (slot === undefined) return;
        waiting.delete(worker);
        answers.push({ slot, answer });
        if (waiting.size === 0) finish();
      });
      for (const worker of waiting.keys()) worker.send(request(id));
      if (waiting.size === 0) finish();
    });
    return answers;
  }

  /**
   * Graceful shutdown: readiness turns false, every worker drains (stops
   * accepting, closes UDP, lets open TCP connections finish for up to
   * `drainTimeout`), and this resolves once all workers have exited. Workers
   * still alive `shutdownGrace` seconds after that are killed ({@link forced}).
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.stateValue = 'draining';
    this.emit('draining');
    for (const slot of this.slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
    }
    const live = this.slots.filter((s) => s.worker !== null);
    if (live.length > 0) {
      const allExited = once(this, 'all-exited');
      for (const slot of live) {
        const worker = slot.worker as Worker;
        if (worker.isConnected()) worker.send({ upcase: 'shutdown' } satisfies ToWorker);
        else worker.process.kill('SIGTERM');
      }
      const drainTimeout = this.options.server?.drainTimeout ?? SERVER_DEFAULTS.drainTimeout;
      const grace = this.options.shutdownGrace ?? 5;
      const timer = setTimeout(
        () => {
          this.forcedValue = true;
          this.logger.warn({ workers: this.workerPids().length }, 'workers did not exit in time; killing them');
          this.kill();
        },
        (drainTimeout + grace) * 1000,
      );
      timer.unref();
      await allExited;
      clearTimeout(timer);
    }
    cluster.off('message', this.onMessage);
    this.stateValue = 'closed';
    this.emit('close');
  }

  /** Kills every worker at once (SIGKILL), e.g. on a second signal. */
  kill(): void {
    for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
  }
}

/**
 * The worker side of a cluster: tells the primary when the server listens or
 * drains, answers metrics requests from `registry`, and drains on the primary's
 * shutdown request. Call {@link listen} instead of `server.listen()`, then await
 * {@link closed}; finally {@link disconnect} lets the worker process exit.
 */
export class ClusterWorker {
  /** Resolves when the server has closed (after draining). */
  readonly closed: Promise<void>;
  private shutdownRequested = false;
  private listenDone = false;

  constructor(
    readonly server: UpcaseServer,
    private readonly registry?: Registry,
  ) {
    if (!cluster.isWorker) throw new WorkerError('ClusterWorker must run in a cluster worker');
    this.closed = once(server, 'close').then(() => undefined);
    server.once('draining', () => this.send({ upcase: 'draining' }));
    process.on('message', this.onMessage);
  }

  /** Listens and tells the primary; a failure is reported to it, then rethrown. */
  async listen(): Promise<ServerAddress> {
    try {
      const address = await this.server.listen();
      this.listenDone = true;
      this.send({ upcase: 'listening', address });
      // The primary may have asked us to stop while we were still binding.
      if (this.shutdownRequested) void this.server.close({ drain: true });
      return address;
    } catch (err) {
      this.send({ upcase: 'listen-error', error: serializeError(err) });
      throw err;
    }
  }

  /** Closes the IPC channel so the process can exit once nothing else runs. */
  disconnect(): void {
    process.off('message', this.onMessage);
    if (cluster.worker?.isConnected()) cluster.worker.disconnect();
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isMessage<ToWorker>(message)) return;
    if (message.upcase === 'shutdown') {
      this.shutdownRequested = true;
      if (this.listenDone) void this.server.close({ drain: true });
    } else if (message.upcase === 'metrics') {
      const id = message.id;
      (this.registry?.getMetricsAsJSON() ?? Promise.resolve([])).then(
        (metrics) => this.send({ upcase: 'metrics', id, metrics }),
        () => this.send({ upcase: 'metrics', id, metrics: [] }),
      );
    } else if (message.upcase === 'connections') {
      const limit = Number.isSafeInteger(message.limit) && message.limit > 0 ? message.limit : 0;
      this.send({ upcase: 'connections', id: message.id, page: this.server.listConnections({ offset: 0, limit }) });
    }
  };

  private send(message: ToPrimary): void {
    if (process.send !== undefined && process.connected) process.send(message);
  }
}
