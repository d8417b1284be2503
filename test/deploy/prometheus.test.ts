// deploy/prometheus/: the scrape config and the alert rules, checked with Debian's promtool
// (check config, check rules, and the rules' unit tests), and held to what upcase exports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { exportedMetricNames } from '../helpers/operator.js';

const dir = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const promtool = ['/usr/bin/promtool', 'promtool'].find((p) => spawnSync(p, ['--version']).status === 0);
const noPromtool = promtool === undefined ? 'promtool is not installed (Debian package prometheus; .ci/run installs it)' : false;

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(readFileSync(join(dir, 'upcase.rules.yml'), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(
  (g) => g.rules,
);

function run(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(promtool!, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('deploy/prometheus', { skip: noPromtool }, () => {
  it('promtool check config accepts the scrape config (and the rule file it loads)', () => {
    const r = run(['check', 'config', 'prometheus.yml']);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  it('promtool check rules accepts the rules', () => {
    const r = run(['check', 'rules', 'upcase.rules.yml']);
    assert.equal(r.status, 0, r.output);
  });

  it('promtool test rules passes the unit tests', () => {
    const r = run(['test', 'rules', 'upcase.rules.test.yml']);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });
});

describe('deploy/prometheus/upcase.rules.yml', () => {
  it('covers what an operator needs, each alert with a severity, a summary and a description', () => {
    const alerts = rules.map((r) => r.alert);
    for (const name of [
      'UpcaseDown',
      'UpcaseConnectionsNearLimit',
      'UpcaseUdpDropsRising',
      'UpcaseTimeoutsRising',
      'UpcaseProxyProtocolRejections',
      'UpcaseTlsHandshakeErrors',
      'UpcaseTlsCertificateExpiresSoon',
    ]) {
      assert.ok(alerts.includes(name), `missing ${name}`);
    }
    for (const rule of rules) {
      assert.ok(['warning', 'critical', 'info'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
      assert.ok((rule.annotations?.summary ?? '').length > 10, `${rule.alert}: summary`);
      assert.ok((rule.annotations?.description ?? '').length > 10, `${rule.alert}: description`);
    }
  });

  it('has a unit test that fires every alert', () => {
    const tests = parse(readFileSync(join(dir, 'upcase.rules.test.yml'), 'utf8')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const fired = new Set(
      tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)),
    );
    for (const rule of rules) assert.ok(fired.has(rule.alert!), `no test fires ${rule.alert}`);
  });

  it('uses only metric names upcase exports', async () => {
    const exported = await exportedMetricNames();
    for (const rule of rules) {
      for (const [name] of rule.expr.matchAll(/\bupcase_[a-z_]+/g)) assert.ok(exported.has(name), `${rule.alert}: ${name} is not exported`);
    }
  });
});
