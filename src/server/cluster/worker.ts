import cluster from 'node:cluster';
import { once } from 'node:events';
import type { Registry } from 'prom-client';
import { serializeError, WorkerError } from '../../errors.js';
import type { ServerAddress, UpcaseServer } from '../server.js';
import { isMessage, type ToPrimary, type ToWorker } from './ipc.js';

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
