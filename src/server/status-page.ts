import { createHash } from 'node:crypto';
import type { ConnectionsPage, ConnectionsQuery } from './connections.js';
import { UDP_DROP_REASONS, PROXY_REJECT_REASONS } from '../stats.js';

/**
 * The live status page at `/` on the metrics port (docs/operations.md, ## Status page):
 * one HTML document rendered here from the same Prometheus text `/metrics` serves and
 * from `/connections`, with no external assets. A small inline script fetches the page
 * again every 2 s and swaps in the new table; without scripts, a meta refresh reloads it.
 * Rates need two samples: the page keeps the last few (time, totals) it rendered.
 */

/** One sample line of the Prometheus text format: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (as prom-client writes it). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    for (let l = labelRe.exec(m[2] ?? ''); l !== null; l = labelRe.exec(m[2] ?? '')) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export interface StatusPageOptions {
  /** The Prometheus text `/metrics` serves. */
  metrics: () => Promise<string>;
  /** The open connections (`/connections`); without it the page shows no client table. */
  connections?: (query: ConnectionsQuery) => Promise<ConnectionsPage>;
  /** Clock, in milliseconds; default `Date.now`. */
  now?: () => number;
}

/** Seconds between refreshes, with and without scripts. */
export const STATUS_REFRESH_SECONDS = 2;
// Clients grouped by address are taken from this many connections at most (one page).
const CLIENT_SCAN = 1000;
// The oldest connections, listed one per row.
const LISTED = 20;

const SCRIPT = `(() => {
  const swap = async () => {
    try {
      const res = await fetch(location.pathname, { cache: 'no-store' });
      if (!res.ok) return;
      const next = new DOMParser().parseFromString(await res.text(), 'text/html').getElementById('status');
      const here = document.getElementById('status');
      if (next !== null && here !== null) here.replaceWith(document.importNode(next, true));
    } catch {
      // The server is restarting or gone: keep what is shown, try again.
    }
  };
  setInterval(swap, ${STATUS_REFRESH_SECONDS * 1000});
})();`;

/** Headers of the page: nothing but its own inline style and script may run or load. */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
};

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** HTML-escapes text for element content and quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

interface Totals {
  t: number;
  connections: number;
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
}

export class StatusPage {
  private readonly samples: Totals[] = [];
  private readonly now: () => number;

  constructor(private readonly options: StatusPageOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The whole page, as of now. */
  async render(): Promise<string> {
    const [text, page] = await Promise.all([
      this.options.metrics(),
      this.options.connections?.({ offset: 0, limit: CLIENT_SCAN }) ?? Promise.resolve(null),
    ]);
    const now = this.now();
    const samples = parseExposition(text);
    const all = (name: string): Sample[] => samples.filter((s) => s.name === name);
    const sum = (name: string, match: (labels: Record<string, string>) => boolean = () => true): number =>
      all(name)
        .filter((s) => match(s.labels))
        .reduce((n, s) => n + s.value, 0);
    const has = (name: string): boolean => samples.some((s) => s.name === name);

    const totals: Totals = {
      t: now,
      connections: sum('upcase_connections_total'),
      datagramsIn: sum('upcase_datagrams_received_total'),
      datagramsOut: sum('upcase_datagrams_sent_total'),
      bytesIn: sum('upcase_bytes_received_total'),
      bytesOut: sum('upcase_bytes_sent_total'),
    };
    const previous = this.remember(totals);
    const rate = (key: Exclude<keyof Totals, 't'>): string => {
      if (previous === null) return '–';
      const delta = totals[key] - previous[key];
      // A worker restarted (its counters began again): no honest rate from these two samples.
      if (delta < 0) return '–';
      return formatNumber(delta / ((totals.t - previous.t) / 1000));
    };

    const build = all('upcase_build_info')[0]?.labels ?? {};
    const start = all('upcase_start_time_seconds')[0]?.value;
    const open = sum('upcase_connections_open');
    // Per worker with --workers (label worker): the instance holds their sum.
    const limit = sum('upcase_max_connections');
    const workers = has('upcase_workers') ? `${sum('upcase_workers')} of ${sum('upcase_workers_configured')}` : '1 (no --workers)';
    const certificates = all('upcase_tls_certificate_expiry_timestamp_seconds');

    const rows: string[] = [];
    const row = (label: string, value: string, id?: string): void => {
      rows.push(`<tr><th scope="row">${escapeHtml(label)}</th><td${id === undefined ? '' : ` id="${id}"`}>${value}</td></tr>`);
    };
    const section = (title: string): void => {
      rows.push(`<tr><th colspan="2" class="section">${escapeHtml(title)}</th></tr>`);
    };

    section('Server');
    row('version', escapeHtml(build.version ?? '?'), 'version');
    row('Node.js', escapeHtml(build.node_version ?? '?'));
    row(
      'transports',
      escapeHtml(
        `tcp: ${build.tcp_transport ?? '?'} (codec ${build.tcp_codec ?? '?'}), udp: ${build.udp_transport ?? '?'}, tls: ${certificates.length > 0 ? 'on' : 'off'}`,
      ),
      'transports',
    );
    row('uptime', start === undefined ? '–' : escapeHtml(formatDuration(now / 1000 - start)), 'uptime');
    row('workers', escapeHtml(workers), 'workers');

    section('Connections');
    const percent = limit > 0 ? Math.min(100, (open / limit) * 100) : 0;
    row(
      'open / limit',
      `<span id="connections-open">${escapeHtml(open)}</span> / <span id="connections-limit">${escapeHtml(limit)}</span> ` +
        `<meter min="0" max="${escapeHtml(limit)}" high="${escapeHtml(limit * 0.8)}" value="${escapeHtml(open)}">${escapeHtml(percent.toFixed(0))}%</meter>`,
    );
    row('accepted', escapeHtml(formatNumber(totals.connections)), 'connections-total');
    row('refused (limit)', escapeHtml(formatNumber(sum('upcase_connections_refused_total'))), 'connections-refused');

    section('Traffic (total)');
    row(
      'UDP requests / replies',
      `${escapeHtml(formatNumber(totals.datagramsIn))} / ${escapeHtml(formatNumber(totals.datagramsOut))}`,
      'datagrams',
    );
    row('bytes in / out', `${escapeHtml(formatNumber(totals.bytesIn))} / ${escapeHtml(formatNumber(totals.bytesOut))}`, 'bytes');

    section('Rates (per second)');
    row('connections accepted', escapeHtml(rate('connections')), 'rate-connections');
    row('datagrams in / out', `${escapeHtml(rate('datagramsIn'))} / ${escapeHtml(rate('datagramsOut'))}`, 'rate-datagrams');
    row('bytes in / out', `${escapeHtml(rate('bytesIn'))} / ${escapeHtml(rate('bytesOut'))}`, 'rate-bytes');

    const byLabel = (title: string, name: string, label: string, values: readonly string[], idPrefix: string): void => {
      section(title);
      for (const value of values) {
        row(value, escapeHtml(formatNumber(sum(name, (l) => l[label] === value))), `${idPrefix}-${value}`);
      }
    };
    byLabel('UDP drops (total, by reason)', 'upcase_udp_drops_total', 'reason', UDP_DROP_REASONS, 'drops');
    byLabel('Timeouts (total, by kind)', 'upcase_timeouts_total', 'kind', ['idle', 'write'], 'timeouts');
    byLabel('PROXY rejections (total, by reason)', 'upcase_proxy_rejected_total', 'reason', PROXY_REJECT_REASONS, 'proxy');

    section('TLS');
    row(
      'handshakes / errors',
      `${escapeHtml(formatNumber(sum('upcase_tls_handshakes_total')))} / ${escapeHtml(formatNumber(sum('upcase_tls_handshake_errors_total')))}`,
      'tls-handshakes',
    );
    if (certificates.length === 0) {
      row('certificate', 'no TLS', 'tls-certificate');
    } else {
      const earliest = Math.min(...certificates.map((c) => c.value));
      const days = (earliest - now / 1000) / 86_400;
      const when = `${new Date(earliest * 1000).toISOString()} (${days < 0 ? 'EXPIRED' : `${days.toFixed(1)} days left`})`;
      row('certificate expires', `<span class="${days < 14 ? 'warn' : ''}">${escapeHtml(when)}</span>`, 'tls-certificate');
    }

    return document(rows.join('\n'), page, now);
  }

  /** Keeps the last minute of samples; returns the newest one at least a second old. */
  private remember(totals: Totals): Totals | null {
    while (this.samples.length > 0 && totals.t - this.samples[0]!.t > 60_000) this.samples.shift();
    let previous: Totals | null = null;
    for (const s of this.samples) if (totals.t - s.t >= 1000) previous = s;
    if (this.samples.length >= 64) this.samples.shift();
    this.samples.push(totals);
    return previous;
  }
}

function clientTables(page: ConnectionsPage | null): string {
  if (page === null) return '';
  const byAddress = new Map<string, { n: number; bytesIn: number; bytesOut: number }>();
  for (const c of page.connections) {
    const key = c.client.address ?? '?';
    const entry = byAddress.get(key) ?? { n: 0, bytesIn: 0, bytesOut: 0 };
    entry.n++;
    entry.bytesIn += c.bytesIn;
    entry.bytesOut += c.bytesOut;
    byAddress.set(key, entry);
  }
  const scanned = page.total > page.connections.length ? ` (the oldest ${page.connections.length} of ${page.total})` : '';
  const clientRows = [...byAddress]
    .sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))
    .map(
      ([address, e]) =>
        `<tr><td>${escapeHtml(address)}</td><td class="n">${e.n}</td><td class="n">${escapeHtml(formatNumber(e.bytesIn))}</td><td class="n">${escapeHtml(formatNumber(e.bytesOut))}</td></tr>`,
    );
  const listed = page.connections.slice(0, LISTED).map((c) => {
    const cells = [
      c.worker === undefined ? String(c.id) : `${c.worker}/${c.id}`,
      `${c.client.address ?? '?'} ${c.client.port ?? ''}`,
      c.proxy === null ? '' : `${c.proxy.address ?? '?'} (v${c.proxy.version})`,
      `${c.transport}/${c.engine ?? c.state}`,
      formatDuration(c.ageSeconds),
      formatNumber(c.bytesIn),
      formatNumber(c.bytesOut),
      formatDuration(c.idleSeconds),
      c.replyOwed ? `yes (${formatNumber(c.owedBytes)} B)` : 'no',
    ];
    return `<tr>${cells.map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`;
  });
  return `<h2>Clients by address${escapeHtml(scanned)}</h2>
<table id="clients"><thead><tr><th>address</th><th>connections</th><th>bytes in</th><th>bytes out</th></tr></thead>
<tbody>${clientRows.join('\n') || '<tr><td colspan="4">no open connections</td></tr>'}</tbody></table>
<h2>Oldest connections (<span id="connections-listed">${Math.min(LISTED, page.connections.length)}</span> of <span id="connections-total-listed">${page.total}</span>; all at <a href="/connections">/connections</a>)</h2>
<table id="connections"><thead><tr><th>id</th><th>client</th><th>via proxy</th><th>transport</th><th>age</th><th>bytes in</th><th>bytes out</th><th>idle</th><th>reply owed</th></tr></thead>
<tbody>${listed.join('\n')}</tbody></table>`;
}

function document(rows: string, page: ConnectionsPage | null, now: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>upcase status</title>
<noscript><meta http-equiv="refresh" content="${STATUS_REFRESH_SECONDS}"></noscript>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fff; }
table { border-collapse: collapse; margin-bottom: 1.5em; min-width: 32em; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 10px; text-align: left; font-variant-numeric: tabular-nums; }
th.section { background: #eef; font-size: 110%; padding-top: 8px; }
th[scope=row] { font-weight: normal; color: #555; width: 14em; }
td.n { text-align: right; }
h1 small { font-weight: normal; color: #777; }
h2 { font-size: 110%; }
.warn { color: #b00; font-weight: bold; }
meter { width: 12em; }
footer { color: #777; }
</style>
</head>
<body>
<main id="status">
<h1>upcase <small>status</small></h1>
<table id="summary">
${rows}
</table>
${clientTables(page)}
<footer>Rendered <time datetime="${new Date(now).toISOString()}">${escapeHtml(new Date(now).toISOString())}</time>; refreshes every ${STATUS_REFRESH_SECONDS} s.
Also <a href="/metrics">/metrics</a>, <a href="/connections">/connections</a>, <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>.</footer>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** 1234567 → "1.23M"; small numbers as they are (up to two decimals). */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  for (const [size, unit] of [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e4, 'k'],
  ] as const) {
    if (abs >= size) return `${(n / size).toFixed(abs >= size * 100 ? 0 : 2)}${unit}`;
  }
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** 93784 → "1d 2h 3m 4s". */
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [size, unit] of [
    [86_400, 'd'],
    [3600, 'h'],
    [60, 'm'],
  ] as const) {
    if (s >= size || parts.length > 0) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  parts.push(`${s}s`);
  return parts.join(' ');
}
