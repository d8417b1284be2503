// deploy/grafana/upcase-dashboard.json as the tests read it: its panels, rows and query expressions.
import { readFileSync } from 'node:fs';

export const DASHBOARD_PATH = new URL('../../deploy/grafana/upcase-dashboard.json', import.meta.url);

export interface Panel {
  type: string;
  title: string;
  id: number;
  repeat?: string;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

export interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
}

/** Every panel, including those inside collapsed rows. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every query expression of the panels, with the panel's title. */
export function dashboardQueries(dashboard: Dashboard): Array<{ title: string; expr: string }> {
  return allPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
}

/**
 * An expression as Grafana would send it with every job and instance selected
 * (the variables' allValue `.+`) and `$__rate_interval` set to `rateInterval`.
 */
export function expand(expr: string, rateInterval: string): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$job', '.+').replaceAll('$instance', '.+');
}
