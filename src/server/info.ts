import { Gauge, type GaugeConfiguration, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/**
 * What one server process runs with: build, transports and the limits in force.
 * {@link UpcaseServer.info} gives it; the metrics below and the status page show it.
 */
export interface ServerInfo {
  version: string;
  nodeVersion: string;
  /** Which transport serves plain TCP; `none` without TCP (or before listening). */
  tcpTransport: 'native' | 'stream' | 'none';
  /** The codec path plain TCP uses: the C codec's block path (`avx512`, `sse2`, `scalar`), `js`, or `none`. */
  tcpCodec: string;
  udpTransport: 'native' | 'dgram' | 'none';
  tls: boolean;
  /** The TCP connection limit in force (after fitting the open-file limit). */
  maxConnections: number;
  /** Seconds; 0 = never. */
  idleTimeout: number;
  writeTimeout: number;
  /** UDP datagrams per second per source (0 = no limit), and the bucket's size. */
  udpRateLimit: number;
  udpRateBurst: number;
  /** The TLS certificate in use: its serial and expiry (seconds since the epoch); null without TLS. */
  certificate: { serialNumber: string; notAfter: number } | null;
  /** When the server was created, in seconds since the epoch. */
  startTime: number;
}

export interface InfoMetricsOptions {
  /** Read at every scrape; null before the server listens (nothing is exported then). */
  info: () => ServerInfo | null;
  registry: Registry;
  /**
   * In a cluster worker: its slot. The limits then carry a `worker` label, so that the
   * primary, which sums what its workers report per label set, keeps one series per worker
   * (`sum by (instance)` is then the instance's capacity; `max` the per-worker limit).
   */
  worker?: number;
}

/** A gauge with no sample while `present()` is false (prom-client shows an unset unlabelled gauge as 0). */
class MaybeGauge extends Gauge<string> {
  constructor(
    config: GaugeConfiguration<string>,
    private readonly present: () => boolean,
  ) {
    super(config);
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    const metric = await super.get();
    return this.present() ? metric : { ...metric, values: [] };
  }
}

/**
 * Gauges for what a server runs with (docs/operations.md, ## Metrics). Each one says how
 * a cluster primary must combine its workers' values (prom-client's `aggregator`).
 */
export function registerInfoMetrics(options: InfoMetricsOptions): void {
  const { info, worker } = options;
  const registers = [options.registry];
  const present = (): boolean => info() !== null;
  new Gauge({
    name: 'upcase_build_info',
    help: 'Always 1; the labels say which version, Node.js, transports and codec path this server runs.',
    labelNames: ['version', 'node_version', 'tcp_transport', 'udp_transport', 'tcp_codec'],
    registers,
    // Workers run the same build: one series, not one per worker summed to N.
    aggregator: 'first',
    collect() {
      this.reset();
      const i = info();
      if (i === null) return;
      this.set(
        {
          version: i.version,
          node_version: i.nodeVersion,
          tcp_transport: i.tcpTransport,
          udp_transport: i.udpTransport,
          tcp_codec: i.tcpCodec,
        },
        1,
      );
    },
  });
  new MaybeGauge(
    {
      name: 'upcase_start_time_seconds',
      help: 'When the server started, in seconds since the epoch (the oldest worker with --workers).',
      registers,
      aggregator: 'min',
      collect() {
        const i = info();
        if (i !== null) this.set(i.startTime);
      },
    },
    present,
  );
  const limit = (name: string, help: string, value: (i: ServerInfo) => number): void => {
    new MaybeGauge(
      {
        name,
        help,
        labelNames: worker === undefined ? [] : ['worker'],
        registers,
        // Labelled by worker, each series comes from one process; 'max' only guards against a summed limit.
        aggregator: 'max',
        collect() {
          this.reset();
          const i = info();
          if (i === null) return;
          if (worker === undefined) this.set(value(i));
          else this.set({ worker: String(worker) }, value(i));
        },
      },
      present,
    );
  };
  limit(
    'upcase_max_connections',
    'The TCP connection limit in force (--max-connections, fitted to the open-file limit), per process (label worker with --workers).',
    (i) => i.maxConnections,
  );
  limit('upcase_idle_timeout_seconds', 'Idle timeout of TCP connections (--idle-timeout); 0 = never.', (i) => i.idleTimeout);
  limit('upcase_write_timeout_seconds', 'Write timeout of TCP connections (--write-timeout); 0 = never.', (i) => i.writeTimeout);
  limit('upcase_udp_rate_limit', 'UDP datagrams per second per source address (--udp-rate-limit); 0 = no limit.', (i) => i.udpRateLimit);
  limit('upcase_udp_rate_burst', 'UDP datagrams a source may send at once (--udp-rate-burst).', (i) => i.udpRateBurst);
  new Gauge({
    name: 'upcase_tls_certificate_expiry_timestamp_seconds',
    help: "The TLS certificate's notAfter, in seconds since the epoch, by serial number (changes on reload); absent without TLS.",
    labelNames: ['serial'],
    registers,
    // Workers reload one by one: the earliest expiry is the one to act on.
    aggregator: 'min',
    collect() {
      this.reset();
      const certificate = info()?.certificate;
      if (certificate != null) this.set({ serial: certificate.serialNumber }, certificate.notAfter);
    },
  });
}
