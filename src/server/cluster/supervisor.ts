import type { ClusterSettings } from 'node:cluster';
import { EventEmitter, once } from 'node:events';
import os from 'node:os';
import type { Logger } from 'pino';
import { ClosedError, deserializeError, WorkerError } from '../../errors.js';
import { checkInteger } from '../../options.js';
import type { ServerAddress } from '../server.js';
import { type Answer, isMessage, type ToPrimary, type ToWorker } from './ipc.js';

/**
 * Worker supervision: forks one worker per slot, tells when all of them listen,
 * restarts a dead one with backoff, passes SIGHUP on, and stops them all on shutdown.
 * It sees workers only through {@link ClusterModule} and {@link WorkerHandle}, which
 * node:cluster fits and a test can stand in for.
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

/** What the supervisor uses of a node:cluster `Worker`. */
export interface WorkerHandle extends EventEmitter {
  readonly process: { readonly pid?: number | undefined; kill(signal?: NodeJS.Signals): boolean };
  send(message: ToWorker): boolean;
  isConnected(): boolean;
}

/** What the supervisor uses of `node:cluster` (the default). */
export interface ClusterModule {
  fork(env: Record<string, string>): WorkerHandle;
  setupPrimary(settings: ClusterSettings): void;
  schedulingPolicy: number;
  readonly SCHED_NONE: number;
}

type SlotState = 'starting' | 'listening' | 'draining' | 'down';

/** One worker position, 1..N: its worker of the moment, and how often it crashed in a row. */
interface Slot {
  index: number;
  worker: WorkerHandle | null;
  state: SlotState;
  listeningAt: number;
  failures: number; // consecutive crashes, for the backoff
  restartTimer: NodeJS.Timeout | null;
  hangupOwed: boolean; // a SIGHUP came while its worker was starting
}

export interface SupervisorOptions {
  workers: number;
  cluster: ClusterModule;
  logger: Logger;
  backoff: RestartBackoff;
  /** Worker script, arguments and node flags (`cluster.setupPrimary`); default: this process's own. */
  setup?: ClusterSettings;
  /** The environment of the worker in `slot` (workerEnv). */
  env(slot: number): Record<string, string>;
}

/**
 * Events: `'worker'` ({ slot, pid }) each time a worker listens, `'exit'` ({ slot, pid, code, signal }),
 * `'answer'` (worker, answer) for a reply to a request, `'restart'` ({ slot }) when a dead worker's
 * replacement is forked.
 */
export class Supervisor extends EventEmitter {
  private readonly slots: Slot[] = [];
  private phase: 'new' | 'starting' | 'running' | 'stopping' = 'new';
  private startup: { resolve: (address: ServerAddress) => void; reject: (err: Error) => void } | null = null;
  private restartCount = 0;

  constructor(private readonly options: SupervisorOptions) {
    super();
  }

  /** Workers forked to replace dead ones so far. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Workers listening now. */
  get listening(): number {
    return this.slots.filter((s) => s.state === 'listening').length;
  }

  /** Process ids of the live workers. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.worker?.process.pid === undefined ? [] : [s.worker.process.pid]));
  }

  /** The workers that can answer a request: started, and their channel open. */
  reachable(): Array<{ slot: number; worker: WorkerHandle }> {
    return this.slots.flatMap((s) =>
      s.worker !== null && s.state !== 'starting' && s.worker.isConnected() ? [{ slot: s.index, worker: s.worker }] : [],
    );
  }

  /**
   * Forks the workers and resolves once all of them listen. Rejects with the error of a worker that
   * failed to listen, a `WorkerError` if one exited first, or a `ClosedError` if {@link stop} came first.
   */
  start(): Promise<ServerAddress> {
    if (this.phase !== 'new') return Promise.reject(new ClosedError('the workers were started already'));
    this.phase = 'starting';
    const { cluster, setup } = this.options;
    // The kernel hands out connections (SCHED_NONE: every worker accepts on the shared socket),
    // not the primary. With round-robin, the primary accepts and passes each connection to a
    // worker and keeps it until that worker confirms; a worker killed in between never does, and
    // the connection stays in the primary forever, its client hung (docs/operations.md, Workers).
    // Set before the first fork: node:cluster freezes the policy then.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    if (setup !== undefined) cluster.setupPrimary(setup);
    const started = new Promise<ServerAddress>((resolve, reject) => {
      this.startup = { resolve, reject };
    });
    for (let index = 1; index <= this.options.workers; index++) {
      const slot: Slot = { index, worker: null, state: 'down', listeningAt: 0, failures: 0, restartTimer: null, hangupOwed: false };
      this.slots.push(slot);
      this.fork(slot);
    }
    return started;
  }

  private fork(slot: Slot): void {
    slot.restartTimer = null;
    // A new worker reads the certificate files as it starts: a SIGHUP owed to the last one is not.
    slot.hangupOwed = false;
    const worker = this.options.cluster.fork(this.options.env(slot.index));
    slot.worker = worker;
    slot.state = 'starting';
    worker.on('message', (message: unknown) => this.onMessage(slot, worker, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(slot, worker, code, signal));
    // A worker that cannot be reached (it is dying) emits 'error' on send; its 'exit' follows.
    worker.on('error', (err: NodeJS.ErrnoException) =>
      this.options.logger.debug({ worker: slot.index, code: err.code }, 'worker ipc error'),
    );
  }

  private onMessage(slot: Slot, worker: WorkerHandle, message: unknown): void {
    if (!isMessage<ToPrimary>(message) || slot.worker !== worker) return;
    const { logger } = this.options;
    switch (message.upcase) {
      case 'listening':
        slot.state = 'listening';
        slot.listeningAt = Date.now();
        logger.info({ worker: slot.index, workerPid: worker.process.pid }, 'worker listening');
        // It handles SIGHUP now (it installs its handler before it listens).
        if (slot.hangupOwed) this.hangupSlot(slot);
        this.emit('worker', { slot: slot.index, pid: worker.process.pid });
        if (this.startup !== null && this.slots.every((s) => s.state === 'listening')) {
          this.startup.resolve(message.address);
          this.startup = null;
        }
        break;
      case 'listen-error': {
        // The worker's error as it was (class, code, address, port, OS code), so the caller sees what a single process would.
        const error = deserializeError(message.error);
        logger.error({ worker: slot.index, workerPid: worker.process.pid, code: error.code }, error.message);
        this.failStart(error);
        break;
      }
      case 'draining':
        slot.state = 'draining';
        break;
      case 'metrics':
      case 'connections':
        this.emit('answer', worker, message satisfies Answer);
        break;
    }
  }

  private failStart(error: Error): void {
    if (this.startup === null) return;
    this.startup.reject(error);
    this.startup = null;
  }

  private onExit(slot: Slot, worker: WorkerHandle, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const wasListening = slot.state === 'listening';
    slot.state = 'down';
    const pid = worker.process.pid;
    const { logger, backoff } = this.options;
    this.emit('exit', { slot: slot.index, pid, code, signal });
    if (this.phase === 'stopping') {
      logger.info({ worker: slot.index, workerPid: pid, code, signal }, 'worker exited');
      if (this.slots.every((s) => s.worker === null)) this.emit('all-exited');
      return;
    }
    if (this.phase === 'starting') {
      this.failStart(new WorkerError(`worker ${slot.index} exited during startup (${signal ?? `code ${code}`})`));
      return;
    }
    // Count consecutive crashes; a worker that stayed up long enough starts over.
    if (wasListening && Date.now() - slot.listeningAt >= backoff.resetAfterMs) slot.failures = 0;
    slot.failures++;
    const delay = restartDelay(slot.failures, backoff);
    logger.warn({ worker: slot.index, workerPid: pid, code, signal, restartInMs: delay }, 'worker died; restarting');
    slot.restartTimer = setTimeout(() => {
      if (this.phase !== 'running') return;
      this.restartCount++;
      this.fork(slot);
      this.emit('restart', { slot: slot.index });
    }, delay);
    // Not unref'd: when every worker has died at once, this timer is all that keeps the primary
    // (and the listening sockets it holds for the workers) alive until they are forked again.
  }

  /** Every worker listened once: from now on a dead worker is restarted. */
  running(): void {
    if (this.phase === 'starting') this.phase = 'running';
  }

  /**
   * Sends SIGHUP to every worker that listens or drains, and owes it to every worker still
   * starting: that one gets it once it listens, since it could die of it before it handles it,
   * and the files it read as it started may have changed since. Returns how many workers it reaches.
   */
  hangup(): number {
    let reached = 0;
    for (const slot of this.slots) {
      if (slot.worker === null) continue; // down: its replacement reads the files when it starts
      if (slot.state === 'starting') slot.hangupOwed = true;
      else this.hangupSlot(slot);
      reached++;
    }
    return reached;
  }

  private hangupSlot(slot: Slot): void {
    slot.hangupOwed = false;
    // false if it has just died: its replacement reads the files when it starts.
    slot.worker?.process.kill('SIGHUP');
  }

  /**
   * Asks every worker to drain and resolves once all have exited, true if some had to be
   * killed after `deadlineMs`. A start still in progress rejects with a `ClosedError`.
   */
  async stop(deadlineMs: number): Promise<boolean> {
    this.phase = 'stopping';
    this.failStart(new ClosedError('the cluster was closed while it was starting'));
    for (const slot of this.slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
    }
    const live = this.slots.filter((s) => s.worker !== null);
    if (live.length === 0) return false;
    const allExited = once(this, 'all-exited');
    for (const slot of live) {
      const worker = slot.worker as WorkerHandle;
      if (worker.isConnected()) worker.send({ upcase: 'shutdown' });
      else worker.process.kill('SIGTERM');
    }
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      this.options.logger.warn({ workers: this.pids().length }, 'workers did not exit in time; killing them');
      this.kill();
    }, deadlineMs);
    timer.unref();
    await allExited;
    clearTimeout(timer);
    return forced;
  }

  /** Kills every worker at once (SIGKILL). */
  kill(): void {
    for (const slot of this.slots) slot.worker?.process.kill('SIGKILL');
  }
}
