// A real Prometheus (Debian's /usr/bin/prometheus) loads deploy/prometheus/ (its scrape config, with the
// targets and intervals swapped for the test's, and its rules), scrapes two `upcase serve` under a bounded
// load (one process with TLS, one with --workers 2 and PROXY protocol), and then:
//  - every query of the Grafana dashboard returns series;
//  - the alerts whose conditions the load creates are pending or firing (connections near the limit,
//    refused, UDP drops, timeouts, PROXY rejections, TLS handshake errors, a certificate expiring in
//    7 days), and UpcaseDown once one upcase is stopped.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { type ServeProcess, spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';
import { dashboardQueries, expand, readDashboard } from '../helpers/dashboard.js';
import { holdConnections } from '../helpers/operator.js';

const PROMETHEUS = '/usr/bin/prometheus';
const deploy = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const skip = existsSync(PROMETHEUS) ? false : 'prometheus is not installed (Debian package prometheus; .ci/run installs it)';

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

interface QueryResult {
  status: string;
  data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  error?: string;
}

describe('a real Prometheus scraping upcase', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'upcase-prometheus-'));
  let prometheus: ChildProcess;
  let prometheusLog = '';
  let api = '';
  let single: ServeProcess;
  let cluster: ServeProcess;
  const held: net.Socket[] = [];

  const query = async (expr: string): Promise<QueryResult> => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as QueryResult;
  };
  const alertStates = async (): Promise<Map<string, Set<string>>> => {
    const res = (await (await fetch(`${api}/api/v1/alerts`)).json()) as {
      data: { alerts: Array<{ labels: Record<string, string>; state: string }> };
    };
    const out = new Map<string, Set<string>>();
    for (const a of res.data.alerts) out.set(a.labels.alertname!, (out.get(a.labels.alertname!) ?? new Set()).add(a.state));
    return out;
  };

  // Nothing started here may outlive the test process, even when the runner cancels it.
  const reap = (): void => {
    for (const child of [prometheus, single?.child, cluster?.child]) child?.kill('SIGKILL');
  };

  before(async () => {
    process.once('exit', reap);
    // A certificate that expires in 7 days: within the 14 the alert looks ahead.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '7',
        '-subj',
        '/CN=localhost',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    single = spawnServe([
      '--metrics-port',
      '0',
      '--log-level',
      'warn',
      '--max-connections',
      '40',
      '--udp-rate-limit',
      '5',
      '--udp-rate-burst',
      '5',
      '--tls-cert',
      join(dir, 'cert.pem'),
      '--tls-key',
      join(dir, 'key.pem'),
      '--tls-port',
      '0',
    ]);
    cluster = spawnServe([
      '--metrics-port',
      '0',
      '--log-level',
      'warn',
      '--workers',
      '2',
      '--idle-timeout',
      '1',
      '--proxy-protocol',
      '--proxy-header-timeout',
      '1',
    ]);
    const [a, b] = await Promise.all([single.ready(), cluster.ready()]);
    // The ready line names the TLS port last: take the plain one by name.
    a.port = Number((await single.line(/tcp\+udp 127\.0\.0\.1:(\d+)/))[1]);
    const targets = [a, b].map((s) => new URL(s.metrics!).host);

    // The shipped config, with the test's targets, intervals and an absolute path to the shipped rules.
    const config = parse(readFileSync(join(deploy, 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }>; scrape_timeout?: string }>;
    };
    config.global.scrape_interval = '1s';
    config.global.evaluation_interval = '1s';
    config.rule_files = config.rule_files.map((f) => join(deploy, f));
    config.scrape_configs[0]!.scrape_timeout = '1s';
    config.scrape_configs[0]!.static_configs = [{ targets }];
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (d: Buffer) => {
      prometheusLog += d.toString();
    });
    await until(
      async () => {
        try {
          return (await fetch(`${api}/-/ready`)).status === 200;
        } catch {
          return false;
        }
      },
      'prometheus to be ready',
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${prometheusLog}`);
    });

    // Rates need a sample from before the load.
    await until(async () => (await query('up == 1')).data.result.length === 2, 'both targets up', 20_000);
    // The bounded load. On the single process: round trips, 37 connections held (of 40), then 5 more,
    // of which 2 are refused; UDP over the rate limit; TLS handshakes, 2 good and 3 with plaintext.
    for (let i = 0; i < 3; i++) assert.equal((await tcpRoundTrip(a.port, `round trip ${i}`)).length, 12);
    const udp = dgram.createSocket('udp4');
    for (let i = 0; i < 40; i++) udp.send(`datagram ${i}`, a.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 200));
    udp.close();
    const tlsPort = Number(/tls 127\.0\.0\.1:(\d+)/.exec(single.stdout)![1]);
    for (let i = 0; i < 2; i++) {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false });
      await once(s, 'secureConnect');
      s.write('tls');
      assert.equal(((await once(s, 'data')) as [Buffer])[0].toString(), 'TLS');
      s.destroy();
    }
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ host: '127.0.0.1', port: tlsPort });
      s.on('error', () => {});
      s.write('GET / HTTP/1.0\r\n\r\n');
      await once(s, 'close');
    }
    // Last, as the limit is one budget for TCP and TLS.
    held.push(...(await holdConnections(a.port, 37)));
    for (let i = 0; i < 5; i++) {
      const s = net.connect({ host: '127.0.0.1', port: a.port });
      held.push(s);
      s.on('error', () => {});
      await once(s, 'connect');
    }
    // On the cluster: PROXY connections that go idle (idle timeouts), and two without a PROXY header.
    for (let i = 0; i < 6; i++) {
      const s = net.connect({ host: '127.0.0.1', port: b.port });
      held.push(s);
      s.on('error', () => {});
      await once(s, 'connect');
      s.write(i < 4 ? `PROXY TCP4 198.51.100.${i + 1} 192.0.2.1 4000${i} 12000\r\nidle ${i}` : 'no header here\r\n');
    }
  });

  after(async () => {
    for (const s of held) s.destroy();
    prometheus?.kill('SIGTERM');
    for (const p of [single, cluster]) await p?.stop('SIGTERM', 15_000);
    if (prometheus !== undefined && prometheus.exitCode === null) await once(prometheus, 'exit');
    rmSync(dir, { recursive: true, force: true });
    process.off('exit', reap);
  });

  it('scrapes both targets, and every query of the Grafana dashboard returns series', async () => {
    await until(async () => (await query('up == 1')).data.result.length === 2, 'both targets up', 20_000);
    // rate() needs two samples after the load, and the idle timeouts (1 s) must have happened.
    await until(
      async () => (await query('sum(increase(upcase_timeouts_total{kind="idle"}[30s]))')).data.result[0]?.value[1] !== '0',
      'idle timeouts in Prometheus',
      20_000,
    );
    await new Promise((r) => setTimeout(r, 3000));
    const empty: string[] = [];
    for (const { title, expr } of dashboardQueries(readDashboard())) {
      const r = await query(expand(expr, '20s'));
      assert.equal(r.status, 'success', `${title}: ${expr}: ${r.error}`);
      if (r.data.result.length === 0) empty.push(`${title}: ${expr}`);
    }
    assert.deepEqual(empty, [], 'dashboard queries without series');
    const build = (await query('upcase_build_info')).data.result;
    assert.equal(build.length, 2);
    for (const series of build) assert.equal(series.value[1], '1', 'build_info is 1 with and without workers');
    const limits = (await query('upcase_max_connections')).data.result.map((s) => `${s.metric.worker ?? '-'}=${s.value[1]}`).sort();
    assert.deepEqual(limits, ['-=40', '1=1024', '2=1024']);
  });

  it('raises the alerts the load calls for, and UpcaseDown when an instance stops', async () => {
    const expected = [
      'UpcaseConnectionsNearLimit',
      'UpcaseConnectionsRefused',
      'UpcaseUdpDropsRising',
      'UpcaseTimeoutsRising',
      'UpcaseProxyProtocolRejections',
      'UpcaseTlsHandshakeErrors',
      'UpcaseTlsCertificateExpiresSoon',
    ];
    let states = new Map<string, Set<string>>();
    await until(
      async () => {
        states = await alertStates();
        return expected.every((name) => states.has(name));
      },
      'the alerts',
      20_000,
    ).catch(() => assert.fail(`alerts: ${JSON.stringify([...states].map(([k, v]) => [k, [...v]]))}`));
    assert.equal(states.has('UpcaseDown'), false);
    assert.equal(states.has('UpcaseTlsCertificateExpired'), false);
    assert.equal(states.has('UpcaseWorkersDown'), false);

    cluster.signal('SIGTERM');
    await cluster.exitWithin(15_000);
    await until(async () => (await alertStates()).has('UpcaseDown'), 'UpcaseDown', 20_000);
  });
});
