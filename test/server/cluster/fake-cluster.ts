// A stand-in for node:cluster (ClusterOptions.cluster): workers are EventEmitters the test drives, so
// supervision, SIGHUP forwarding and shutdown are tested without forking. The messages are the real ones
// (src/server/cluster/ipc.ts), so a wrong message shape fails the type check here.
import { EventEmitter } from 'node:events';
import type { ToPrimary, ToWorker } from '../../../src/server/cluster/ipc.js';
import type { ClusterModule, WorkerHandle } from '../../../src/server/cluster/supervisor.js';
import type { ServerAddress } from '../../../src/server/server.js';

export class FakeWorker extends EventEmitter implements WorkerHandle {
  /** What the primary sent it, in order. */
  readonly sent: ToWorker[] = [];
  /** The signals the primary sent it, in order. */
  readonly signals: NodeJS.Signals[] = [];
  readonly process: { pid: number; kill(signal?: NodeJS.Signals): boolean };
  private alive = true;

  constructor(
    pid: number,
    readonly env: Record<string, string>,
  ) {
    super();
    this.process = {
      pid,
      kill: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (!this.alive) return false;
        this.signals.push(signal);
        if (signal === 'SIGKILL') this.exit(null, 'SIGKILL');
        return true;
      },
    };
  }

  send(message: ToWorker): boolean {
    this.sent.push(message);
    return true;
  }

  isConnected(): boolean {
    return this.alive;
  }

  /** Says what a worker says over IPC. */
  say(message: ToPrimary): void {
    this.emit('message', message);
  }

  /** Says that its server listens on `port`. */
  listening(port: number): void {
    this.say({
      upcase: 'listening',
      address: { host: '127.0.0.1', port, transports: ['tcp', 'udp'], tlsPort: null } satisfies ServerAddress,
    });
  }

  /** Exits (as node:cluster reports it: code, or the signal that ended it). */
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (!this.alive) return;
    this.alive = false;
    this.emit('exit', code, signal);
  }

  get exited(): boolean {
    return !this.alive;
  }
}

export class FakeCluster implements ClusterModule {
  readonly SCHED_NONE = 2;
  schedulingPolicy = 1;
  /** Every worker forked, in order. */
  readonly forked: FakeWorker[] = [];

  fork(env: Record<string, string>): FakeWorker {
    const worker = new FakeWorker(10_000 + this.forked.length, env);
    this.forked.push(worker);
    return worker;
  }

  setupPrimary(): void {}

  /** The newest worker of `slot` (1..N). */
  worker(slot: number): FakeWorker {
    const worker = this.forked.filter((w) => w.env.UPCASE_CLUSTER_WORKER === String(slot)).at(-1);
    if (worker === undefined) throw new Error(`no worker forked for slot ${slot}`);
    return worker;
  }
}
