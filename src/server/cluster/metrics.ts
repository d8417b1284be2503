import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsJson } from './ipc.js';

/**
 * The metrics of a cluster: the primary's own (workers listening, configured, restarted,
 * and its process metrics), and every worker's summed into one exposition.
 * What must not be summed says so where it is defined, with prom-client's `aggregator`
 * (`first` for `upcase_build_info`, `min`/`max` in src/server/info.ts and metrics.ts),
 * and a worker labels its limit gauges with its slot (createMetricsRegistry's `worker`).
 */

/** What the primary's own metrics read at scrape time. */
export interface PrimaryFigures {
  /** Workers listening now. */
  listening(): number;
  /** Workers the cluster runs when all are up. */
  configured: number;
  /** Workers restarted after they died. */
  restarts(): number;
}

/** A registry with the primary's own metrics, and its process metrics unless `processMetrics` is false. */
export function createPrimaryRegistry(figures: PrimaryFigures, processMetrics: boolean): Registry {
  const registry = new Registry();
  const registers = [registry];
  new Gauge({
    name: 'upcase_workers',
    help: 'Workers listening now (cluster mode).',
    registers,
    collect() {
      this.set(figures.listening());
    },
  });
  new Gauge({
    name: 'upcase_workers_configured',
    help: 'Workers the cluster runs when all are up (--workers).',
    registers,
    collect() {
      this.set(figures.configured);
    },
  });
  new Counter({
    name: 'upcase_worker_restarts_total',
    help: 'Workers restarted after they died (cluster mode).',
    registers,
    collect() {
      this.reset();
      this.inc(figures.restarts());
    },
  });
  if (processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The Prometheus text of the workers' metrics and the primary's, aggregated by prom-client's
 * `AggregatorRegistry.aggregate`: counters and gauges are summed per label set unless their
 * `aggregator` says otherwise.
 */
export async function aggregateMetrics(workers: MetricsJson[], primary: Registry): Promise<string> {
  return AggregatorRegistry.aggregate([...workers, await primary.getMetricsAsJSON()]).metrics();
}
