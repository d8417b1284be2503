// deploy/grafana/upcase-dashboard.json: importable as-is (a data source variable, no hard-wired data source),
// with the rows the operator needs, and queries over metric names upcase exports.
// test/deploy/prometheus-live.test.ts runs every query against a real Prometheus.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allPanels, dashboardQueries, readDashboard } from '../helpers/dashboard.js';
import { exportedMetricNames } from '../helpers/operator.js';

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template literal.
const DATASOURCE = '${datasource}';

describe('deploy/grafana/upcase-dashboard.json', () => {
  const dashboard = readDashboard();

  it('picks its data source from a variable, and its instances from upcase_build_info', () => {
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.datasource?.type, 'datasource');
    assert.equal(vars.datasource?.query, 'prometheus');
    assert.match(vars.instance?.definition ?? '', /upcase_build_info/);
    for (const panel of allPanels(dashboard).filter((p) => p.type !== 'row')) {
      assert.equal(panel.datasource?.uid, DATASOURCE, `${panel.title}: data source`);
      for (const t of panel.targets ?? []) assert.equal(t.datasource?.uid, DATASOURCE, `${panel.title}: target data source`);
    }
    assert.doesNotMatch(JSON.stringify(dashboard), /DS_PROMETHEUS|"uid": ?"[a-zA-Z0-9]{9,}"/, 'no data source bound to one Grafana');
  });

  it('has the rows an operator needs, and one row per instance', () => {
    const rows = dashboard.panels.filter((p) => p.type === 'row');
    const titles = rows.map((r) => r.title);
    for (const title of ['Traffic', 'Connections', 'Drops, timeouts and errors', 'TLS', 'Workers'])
      assert.ok(titles.includes(title), title);
    assert.ok(
      rows.some((r) => r.repeat === 'instance'),
      'a row repeated by instance',
    );
    const ids = allPanels(dashboard).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });

  it('queries only metrics upcase exports (or Prometheus and prom-client add)', async () => {
    const exported = await exportedMetricNames();
    const queries = dashboardQueries(dashboard);
    assert.ok(queries.length >= 20);
    for (const { title, expr } of queries) {
      for (const [name] of expr.matchAll(/\bupcase_[a-z_]+/g)) assert.ok(exported.has(name), `${title}: ${name} is not exported`);
      assert.match(expr, /job=~"\$job", instance=~"\$instance"/, `${title}: filtered by the variables`);
    }
  });
});
