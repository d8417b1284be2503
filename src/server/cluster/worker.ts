import cluster from 'node:cluster';
import { once } from 'node:events';
import type { Registry } from 'prom-client';
import { serializeError, WorkerError } from '../../errors.js';
import type { ServerAddress, UpcaseServer } from '../server.js';
import { isMessage, type ToPrimary, type ToWorker } from './ipc.js';

/** The worker's end of the IPC channel to the primary. */
export interface PrimaryChannel {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  /** Sends while the channel is open; a message to a primary that is gone is dropped. */
  send(message: ToPrimary): void;
  /** Closes the channel, so the process can exit once nothing else runs. */
  disconnect(): void;
}

/** This process's channel to its cluster primary (node:cluster). */
const processChannel: PrimaryChannel = {
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener),
  send: (message) => {
    if (process.send !== undefined && process.connected) process.send(message);
  },
  disconnect: () => {
    if (cluster.worker?.isConnected()) cluster.worker.disconnect();
  },
};

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

  /**
   * @param registry what the primary's metrics requests are answered from
   * @param channel the channel to the primary; default this process's (it must be a cluster worker)
   */
  constructor(
    readonly server: UpcaseServer,
    private readonly registry?: Registry,
    private readonly channel: PrimaryChannel = processChannel,
  ) {
    if (channel === processChannel && !cluster.isWorker) throw new WorkerError('ClusterWorker must run in a cluster worker');
    this.closed = once(server, 'close').then(() => undefined);
    server.once('draining', () => this.send({ upcase: 'draining' }));
    channel.on('message', this.onMessage);
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

  /**
   * Drains the server: at once if it listens, else as soon as it does (a shutdown request
   * from the primary, or a signal, can come while it is still binding).
   */
  drain(): void {
    this.shutdownRequested = true;
    if (this.listenDone) void this.server.close({ drain: true });
  }

  /** Closes the IPC channel so the process can exit once nothing else runs. */
  disconnect(): void {
    this.channel.off('message', this.onMessage);
    this.channel.disconnect();
  }

  private readonly onMessage = (message: unknown): void => {
    if (!isMessage<ToWorker>(message)) return;
    if (message.upcase === 'shutdown') {
      this.drain();
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
    this.channel.send(message);
  }
}
