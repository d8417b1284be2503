import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { InvalidArgumentError, networkError } from '../errors.js';
import { checkHost, checkPort } from '../options.js';
import { type ConnectionsPage, type ConnectionsQuery, parseConnectionsQuery } from './connections.js';
import { registerInfoMetrics, type ServerInfo } from './info.js';
import { RateLimitedLog, silentLogger } from '../log.js';
import { STATUS_PAGE_HEADERS, StatusPage } from './status-page.js';
import { PROXY_REJECT_REASONS, UDP_DROP_REASONS, type ServerStats } from '../stats.js';

/**
 * Prometheus metrics for one server process. The hot path only bumps the plain
 * counters of {@link ServerStats}; these metrics read them at scrape time
 * (prom-client `collect`), so a scrape costs nothing per packet.
 * Every metric is listed in docs/operations.md (## Metrics).
 */

export interface MetricsRegistryOptions {
  /**
   * The counters to expose: a function returning them, read at every scrape (for a
   * server, `() => server.stats`), or a counters object that is counted into (such as
   * {@link createStats} gives). A frozen snapshot (`server.stats`) is refused: it never changes.
   */
  stats: ServerStats | (() => ServerStats);
  /** Also expose prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
  /** Register into this registry instead of a new one. */
  registry?: Registry;
  /** Datagrams the kernel dropped for the UDP port ({@link UpcaseServer.udpKernelDrops}); null when unknown. */
  udpKernelDrops?: () => number | null;
  /** Build, transports and limits, for `upcase_build_info` and the limit gauges (src/server/info.ts). */
  info?: () => ServerInfo | null;
  /** In a cluster worker, its slot: the limit gauges are then labelled by worker. */
  worker?: number;
}

/** What the metrics endpoint serves: a prom-client `Registry` fits, and so does a `ClusterPrimary`. */
export interface MetricsSource {
  /** The `Content-Type` of {@link metrics}' text. */
  readonly contentType: string;
  /** The Prometheus text exposition. */
  metrics(): Promise<string>;
}

/** Creates a registry whose `upcase_*` metrics read `stats` at scrape time. */
export function createMetricsRegistry(options: MetricsRegistryOptions): Registry {
  const registry = options.registry ?? new Registry();
  const { stats } = options;
  if (typeof stats !== 'function' && Object.isFrozen(stats)) {
    throw new InvalidArgumentError(
      'stats',
      'counters that change, or a function returning them (`() => server.stats`)',
      'a frozen snapshot',
    );
  }
  const read = typeof stats === 'function' ? stats : () => stats;
  const registers = [registry];

  new Gauge({
    name: 'upcase_connections_open',
    help: 'TCP connections open now.',
    registers,
    collect() {
      this.set(read().connectionsOpen);
    },
  });
  const counter = (name: string, help: string, value: (s: ServerStats) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value(read()));
      },
    });
  };
  const labelled = <L extends string>(name: string, help: string, label: L, values: (s: ServerStats) => Array<[string, number]>): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect() {
        // Reset first: label values that vanished (e.g. after a restart) must not linger.
        this.reset();
        for (const [labelValue, n] of values(read())) this.inc({ [label]: labelValue } as Record<L, string>, n);
      },
    });
  };

  counter('upcase_connections_total', 'TCP connections accepted.', (s) => s.connectionsTotal);
  counter(
    'upcase_connections_refused_total',
    'TCP connections closed at once because --max-connections was reached.',
    (s) => s.connectionsRefused,
  );
  counter(
    'upcase_connections_refused_per_source_total',
    'TCP connections closed at once because their source address had --max-connections-per-source open.',
    (s) => s.connectionsRefusedPerSource,
  );
  labelled('upcase_bytes_received_total', 'Payload bytes received, by transport.', 'transport', (s) => [
    ['tcp', s.tcpBytesIn],
    ['udp', s.udpBytesIn],
    ['tls', s.tlsBytesIn],
  ]);
  labelled('upcase_bytes_sent_total', 'Payload bytes sent, by transport.', 'transport', (s) => [
    ['tcp', s.tcpBytesOut],
    ['udp', s.udpBytesOut],
    ['tls', s.tlsBytesOut],
  ]);
  counter('upcase_tls_handshakes_total', 'TLS handshakes completed.', (s) => s.tlsHandshakes);
  counter(
    'upcase_tls_handshake_errors_total',
    'TLS handshakes that failed (plaintext, timeout, reset; codes in upcase_errors_total).',
    (s) => s.tlsHandshakeErrors,
  );
  counter('upcase_datagrams_received_total', 'UDP request datagrams received.', (s) => s.udpDatagramsIn);
  const kernelDrops = options.udpKernelDrops;
  if (kernelDrops !== undefined) {
    new Counter({
      name: 'upcase_udp_kernel_drops_total',
      help: 'UDP datagrams the kernel dropped for the listening port before upcase could read them (receive buffer full).',
      registers,
      // Every cluster worker reads the same per-port figure: the primary keeps one, not the sum.
      aggregator: 'max',
      collect() {
        this.reset();
        this.inc(kernelDrops() ?? 0);
      },
    });
  }
  counter('upcase_datagrams_sent_total', 'UDP reply datagrams sent.', (s) => s.udpDatagramsOut);
  labelled('upcase_udp_drops_total', 'UDP requests that got no reply, by reason.', 'reason', (s) =>
    UDP_DROP_REASONS.map((reason) => [reason, s.udpDrops[reason]]),
  );
  labelled('upcase_errors_total', 'Errors by code (OS code such as ECONNRESET, or UPCASE_ERR_*).', 'code', (s) => Object.entries(s.errors));
  counter(
    'upcase_proxy_accepted_total',
    'TCP connections whose PROXY protocol header was accepted (--proxy-protocol).',
    (s) => s.proxyAccepted,
  );
  labelled('upcase_proxy_rejected_total', 'TCP connections closed for their PROXY protocol header, by reason.', 'reason', (s) =>
    PROXY_REJECT_REASONS.map((reason) => [reason, s.proxyRejected[reason]]),
  );
  labelled('upcase_timeouts_total', 'TCP connections closed by a timeout, by kind (idle, write).', 'kind', (s) => [
    ['idle', s.idleTimeouts],
    ['write', s.writeTimeouts],
  ]);

  if (options.info !== undefined) registerInfoMetrics({ info: options.info, registry, worker: options.worker });
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** Port for the HTTP endpoint; 0 picks a free one. Required: the endpoint is off unless asked for. */
  port: number;
  /** Address to listen on. Default `127.0.0.1`: metrics are not for the whole network unless you say so. */
  host?: string;
  /** What `/metrics` serves. */
  source: MetricsSource;
  /** `/readyz` answers 200 while this returns true, else 503. */
  ready: () => boolean;
  /** `/healthz` answers 200 while this returns true, else 503. Default: always (the process answers, so it lives). */
  healthy?: () => boolean;
  /** `/connections` serves these pages (JSON); without it, `/connections` answers 404. */
  connections?: (query: ConnectionsQuery) => ConnectionsPage | Promise<ConnectionsPage>;
  /** A pino logger; default silent. */
  logger?: Logger;
}

export const METRICS_DEFAULT_HOST = '127.0.0.1';

/**
 * A small HTTP server for operators: `GET /` (the live status page), `GET /metrics`
 * (Prometheus text format), `GET /connections` (the open TCP connections, JSON),
 * `GET /healthz` (liveness) and `GET /readyz` (readiness). Use {@link startMetricsServer}.
 */
export class MetricsServer {
  readonly host: string;
  readonly port: number;
  private readonly options: MetricsServerOptions;
  private readonly logger: Logger;
  private readonly warnings: RateLimitedLog;
  private readonly server: http.Server;
  private bound: { host: string; port: number } | null = null;
  private closing: Promise<void> | null = null;
  private readonly statusPage: StatusPage;

  constructor(options: MetricsServerOptions) {
    this.port = checkPort('metricsPort', options.port);
    this.host = options.host === undefined ? METRICS_DEFAULT_HOST : checkHost('metricsHost', options.host);
    this.options = options;
    this.logger = options.logger ?? silentLogger();
    this.warnings = new RateLimitedLog(this.logger);
    this.server = http.createServer((req, res) => this.handle(req, res));
    // A scraper or probe sends one small request; do not let slow clients hold sockets.
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 5_000;
    this.server.maxConnections = 64;
    const { connections } = options;
    this.statusPage = new StatusPage({
      metrics: () => options.source.metrics(),
      connections: connections === undefined ? undefined : async (query) => connections(query),
    });
  }

  /** Binds the endpoint. Rejects with a `NetworkError` (`UPCASE_ERR_LISTEN`). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        const wrapped = networkError({ op: 'listen' }, { transport: 'tcp', address: this.host, port: this.port }, err);
        wrapped.message = `metrics endpoint: ${wrapped.message}`;
        reject(wrapped);
      };
      this.server.once('error', onError);
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError);
        const info = this.server.address() as AddressInfo;
        this.bound = { host: info.address, port: info.port };
        this.logger.info({ metricsAddress: metricsUrl(this.bound) }, 'metrics endpoint listening');
        resolve(this.bound);
      });
    });
  }

  /** The bound address, once listening. */
  address(): { host: string; port: number } | null {
    return this.bound;
  }

  /** Stops the endpoint and closes open scrape connections. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = new Promise((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    }
    return this.closing;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const [path, search] = (req.url ?? '/').split('?', 2) as [string, string | undefined];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz': {
        const ok = this.options.healthy?.() ?? true;
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
        return;
      }
      case '/readyz': {
        const ok = this.options.ready();
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
        return;
      }
      case '/metrics': {
        this.options.source.metrics().then(
          (body) => res.writeHead(200, { 'Content-Type': this.options.source.contentType }).end(body),
          (err: Error) => {
            this.warnings.warn(
              'metrics:collect',
              { code: (err as NodeJS.ErrnoException).code, err: err.message },
              'metrics collection failed',
            );
            res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics collection failed\n');
          },
        );
        return;
      }
      case '/':
        this.statusPage.render().then(
          (html) => res.writeHead(200, STATUS_PAGE_HEADERS).end(html),
          (err: Error) => this.failed(res, 'status', err),
        );
        return;
      case '/connections': {
        if (this.options.connections === undefined) break;
        const query = parseConnectionsQuery(new URLSearchParams(search ?? ''));
        if ('error' in query) {
          res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`${query.error}\n`);
          return;
        }
        Promise.resolve()
          .then(() => this.options.connections!(query))
          .then(
            (page) =>
              res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(`${JSON.stringify(page)}\n`),
            (err: Error) => this.failed(res, 'connections', err),
          );
        return;
      }
    }
    res
      .writeHead(404, { 'Content-Type': 'text/plain' })
      .end(`not found: try /, /metrics, ${this.options.connections === undefined ? '' : '/connections, '}/healthz or /readyz\n`);
  }

  private failed(res: http.ServerResponse, what: string, err: Error): void {
    this.warnings.warn(`metrics:${what}`, { code: (err as NodeJS.ErrnoException).code, err: err.message }, `${what} failed`);
    res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${what} failed\n`);
  }
}

/** Creates a {@link MetricsServer} and waits until it listens. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = new MetricsServer(options);
  await server.listen();
  return server;
}

/** `http://host:port`, with IPv6 literals bracketed. */
export function metricsUrl(address: { host: string; port: number }): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `http://${host}:${address.port}`;
}
