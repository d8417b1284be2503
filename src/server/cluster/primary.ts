import nodeCluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ClosedError, WorkerError } from '../../errors.js';
import { RateLimitedLog, silentLogger } from '../../log.js';
import { checkInteger, SERVER_DEFAULTS, type ServerOptions } from '../../options.js';
import { type ConnectionsPage, type ConnectionsQuery, mergePages } from '../connections.js';
import type { MetricsSource } from '../metrics.js';
import { type ServerAddress, UpcaseServer } from '../server.js';
import { type MetricsJson, WorkerRequests, workerEnv } from './ipc.js';
import { aggregateMetrics, createPrimaryRegistry } from './metrics.js';
import { type ClusterModule, RESTART_BACKOFF, type RestartBackoff, Supervisor } from './supervisor.js';

/** Options of {@link ClusterPrimary}. */
export interface ClusterOptions {
  /** Number of workers, >= 1. */
  workers: number;
  /**
   * The server options the workers use (the primary reads `host`, `port`, `tcp`,
   * `udp` to pick one port for all workers when `port` is 0, `drainTimeout`, and `tlsCert`).
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
  /** What forks the workers: `node:cluster` (the default), or a stand-in that behaves like it (tests). */
  cluster?: ClusterModule;
}

/** A cluster's lifecycle: `new` → `starting` → `listening` → `draining` → `closed`. */
export type ClusterState = 'new' | 'starting' | 'listening' | 'draining' | 'closed';

/**
 * The primary of a worker cluster. Events: `'listening'` (address), `'worker'`
 * ({ slot, pid }) each time a worker listens, `'exit'` ({ slot, pid, code, signal }),
 * `'draining'`, `'close'`.
 */
export class ClusterPrimary extends EventEmitter implements MetricsSource {
  readonly workers: number;
  readonly logger: Logger;
  private readonly options: ClusterOptions;
  private readonly supervisor: Supervisor;
  private readonly requests: WorkerRequests;
  private readonly registry: Registry;
  private stateValue: ClusterState = 'new';
  private bound: ServerAddress | null = null;
  private port = 0;
  private forcedValue = false;
  private closing: Promise<void> | null = null;

  constructor(options: ClusterOptions) {
    super();
    if (!nodeCluster.isPrimary) throw new WorkerError('ClusterPrimary must run in the cluster primary');
    this.workers = checkInteger('workers', options.workers, 1, 1024);
    this.options = options;
    this.logger = options.logger ?? silentLogger();
    const { exec, args, execArgv } = options;
    this.supervisor = new Supervisor({
      workers: this.workers,
      cluster: options.cluster ?? nodeCluster,
      logger: this.logger,
      backoff: { ...RESTART_BACKOFF, ...options.restartBackoff },
      setup: exec !== undefined || args !== undefined || execArgv !== undefined ? { exec, args, execArgv } : undefined,
      env: (slot) => workerEnv(this.port, slot),
    });
    this.requests = new WorkerRequests(options.metricsTimeoutMs ?? 2000, new RateLimitedLog(this.logger));
    this.supervisor.on('answer', (worker, answer) => this.requests.answer(worker, answer));
    for (const event of ['worker', 'exit'] as const) this.supervisor.on(event, (info) => this.emit(event, info));
    this.registry = createPrimaryRegistry(
      { listening: () => this.supervisor.listening, configured: this.workers, restarts: () => this.supervisor.restarts },
      options.processMetrics !== false,
    );
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
    return this.stateValue === 'listening' && this.supervisor.listening > 0;
  }

  /** True if shutdown had to kill workers that did not finish in time. */
  get forced(): boolean {
    return this.forcedValue;
  }

  /**
   * Passes SIGHUP (reload the TLS certificate) to the workers that listen or drain, and to
   * each worker still starting once it listens (before, the signal could end it, and the
   * files it read may have changed since). Logs it, and returns how many workers it reaches.
   * `upcase serve` calls this on SIGHUP.
   */
  hangup(): number {
    const workers = this.supervisor.hangup();
    const tls = this.options.server?.tlsCert !== undefined;
    this.logger.info({ signal: 'SIGHUP', workers }, tls ? 'SIGHUP: passed to the workers' : 'SIGHUP: nothing to reload (no TLS)');
    return workers;
  }

  /** Process ids of the live workers. */
  workerPids(): number[] {
    return this.supervisor.pids();
  }

  address(): ServerAddress {
    if (this.bound === null) throw new ClosedError('the cluster is not listening');
    return this.bound;
  }

  /**
   * Forks the workers and resolves once all of them listen. If a worker fails to
   * listen (e.g. EADDRINUSE), the others are stopped and this rejects with its error;
   * if {@link close} is called meanwhile, it rejects with `UPCASE_ERR_CLOSED`.
   */
  async start(): Promise<ServerAddress> {
    if (this.stateValue !== 'new') throw new ClosedError(`cannot start: the cluster is ${this.stateValue}`);
    this.stateValue = 'starting';
    try {
      const server = this.options.server ?? {};
      this.port = server.port ?? SERVER_DEFAULTS.port;
      if (this.port === 0) {
        // Let the OS pick a port free for both TCP and UDP, then give every worker that
        // number. (Workers asking for port 0 themselves would share TCP but not UDP.)
        const probe = new UpcaseServer({ host: server.host, port: 0, tcp: server.tcp, udp: server.udp });
        this.port = (await probe.listen()).port;
        await probe.close();
      }
      if (this.closing !== null) throw new ClosedError('the cluster was closed while it was starting');
      this.bound = await this.supervisor.start();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.supervisor.running();
    this.stateValue = 'listening';
    this.logger.info({ workers: this.workers, port: this.bound.port }, 'all workers listening');
    this.emit('listening', this.bound);
    return this.bound;
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
    const answers: MetricsJson[] = [];
    for (const { answer } of await this.requests.ask(this.supervisor.reachable(), (id) => ({ upcase: 'metrics', id }), 'metrics')) {
      if (answer.upcase === 'metrics') answers.push(answer.metrics);
    }
    return aggregateMetrics(answers, this.registry);
  }

  /**
   * One page of the open TCP connections of every worker, oldest first, each with its
   * worker slot. A worker that does not answer within `metricsTimeoutMs` is left out.
   */
  async connections(query: ConnectionsQuery): Promise<ConnectionsPage> {
    const pages: Array<{ worker: number; page: ConnectionsPage }> = [];
    // Each worker's oldest offset + limit hold the page (see mergePages).
    const limit = query.offset + query.limit;
    const request = (id: number) => ({ upcase: 'connections', id, limit }) as const;
    for (const { slot, answer } of await this.requests.ask(this.supervisor.reachable(), request, 'connections')) {
      if (answer.upcase === 'connections') pages.push({ worker: slot, page: answer.page });
    }
    return mergePages(pages, query);
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
    const drainTimeout = this.options.server?.drainTimeout ?? SERVER_DEFAULTS.drainTimeout;
    const grace = this.options.shutdownGrace ?? 5;
    if (await this.supervisor.stop((drainTimeout + grace) * 1000)) this.forcedValue = true;
    this.stateValue = 'closed';
    this.emit('close');
  }

  /** Kills every worker at once (SIGKILL), e.g. on a second signal. */
  kill(): void {
    this.supervisor.kill();
  }
}
