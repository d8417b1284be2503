import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { InvalidArgumentError, UpcaseError } from '../errors.js';
import { file, type Kind } from '../options/kinds.js';
import type { BenchResult } from './run.js';

/** Report formats, by file extension. */
export const REPORT_FORMATS = ['.svg', '.png', '.html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/**
 * A report file: the format from its extension, in a directory that exists and may be
 * written, so that a long run does not fail only at its end.
 */
export function reportFile(): Kind<string> {
  const kind = file();
  const expected = 'a file name ending in .svg, .png or .html, in a directory that exists and is writable';
  return {
    ...kind,
    expected,
    check: (name, value) => {
      const path = kind.check(name, value);
      reportFormat(path, name);
      const dir = dirname(path);
      try {
        if (!statSync(dir).isDirectory()) throw new Error('not a directory');
        accessSync(dir, constants.W_OK);
      } catch {
        throw new InvalidArgumentError(name, `a file in a directory that exists and is writable (${dir} is not)`, value);
      }
      return path;
    },
  };
}

export function reportFormat(file: string, name = 'report'): ReportFormat {
  const ext = extname(file).toLowerCase();
  if (!(REPORT_FORMATS as readonly string[]).includes(ext)) {
    throw new InvalidArgumentError(name, 'a file name ending in .svg, .png or .html', file);
  }
  return ext as ReportFormat;
}

const W = 960;
const PANEL_H = 260;
const M = { left: 80, right: 44, top: 36, bottom: 44 };
const TITLE_H = 56;
const H = TITLE_H + 2 * (PANEL_H + M.top + M.bottom);
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const BLUE = '#1f77b4';
const RED = '#d62728';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step giving about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function fmt(n: number): string {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)}`;
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

interface Panel {
  top: number;
  title: string;
  xLabel: string;
  yLabel: string;
  xTicks: Array<{ x: number; label: string }>;
  xMax: number;
  yMax: number;
  series: Array<{ points: Array<[number, number]>; color: string; dots: boolean }>;
}

function panel(p: Panel): string {
  const x0 = M.left;
  const y0 = p.top + M.top;
  const w = W - M.left - M.right;
  const h = PANEL_H;
  const sx = (x: number): number => x0 + (p.xMax > 0 ? (x / p.xMax) * w : 0);
  const sy = (y: number): number => y0 + h - (p.yMax > 0 ? (y / p.yMax) * h : 0);
  const out: string[] = [];
  out.push(text(x0, p.top + 22, p.title, 'font-size="15" font-weight="bold"'));
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="#fafafa" stroke="#999"/>`);
  const step = niceStep(p.yMax, 5);
  for (let y = 0; y <= p.yMax + 1e-9; y += step) {
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#e3e3e3"/>`);
    out.push(text(x0 - 8, sy(y) + 4, fmt(y), 'font-size="11" text-anchor="end"'));
  }
  for (const t of p.xTicks) {
    out.push(`<line x1="${sx(t.x).toFixed(1)}" x2="${sx(t.x).toFixed(1)}" y1="${y0}" y2="${y0 + h}" stroke="#e3e3e3"/>`);
    out.push(text(sx(t.x), y0 + h + 16, t.label, 'font-size="11" text-anchor="middle"'));
  }
  out.push(text(x0 + w / 2, y0 + h + 36, p.xLabel, 'font-size="12" text-anchor="middle"'));
  out.push(text(18, y0 + h / 2, p.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 18 ${(y0 + h / 2).toFixed(1)})"`));
  for (const s of p.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    if (s.dots)
      for (const [x, y] of s.points) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  return out.join('\n');
}

function percentileLabel(decade: number): string {
  if (decade === 0) return '0%';
  return `${(100 - 100 / 10 ** decade).toFixed(Math.max(0, decade - 2))}%`;
}

/** A one-line description of the run, for titles. */
export function describe(r: BenchResult): string {
  const load =
    r.transport === 'udp' ? `${r.connections} socket(s) × ${r.pipeline} in flight` : `${r.connections} conn × ${r.pipeline} in flight`;
  const mode = r.rate === null ? 'closed loop' : `fixed rate ${fmt(r.rate)}/s`;
  return `${r.tls ? 'TLS' : r.transport.toUpperCase()} ${r.host}:${r.port}, ${load} × ${r.size} B ${r.payload}, ${mode}, ${r.duration}s`;
}

/**
 * An SVG chart of a run: the latency percentile distribution on a log
 * 1/(1 − p) axis (as HdrHistogram's plots), and throughput over time.
 */
export function renderSvg(r: BenchResult): string {
  // As far as the sample count resolves percentiles; the maximum is drawn at the right edge.
  const maxDecade = Math.max(1, Math.min(6, Math.floor(Math.log10(Math.max(10, r.latency.count)))));
  const xOf = (percentile: number): number => Math.min(maxDecade, percentile >= 100 ? maxDecade : Math.log10(100 / (100 - percentile)));
  const pts = r.percentiles.map((p): [number, number] => [xOf(p.percentile), p.value]);
  const yMaxLat = Math.max(1, ...pts.map(([, y]) => y)) * 1.05;
  const decades = Array.from({ length: maxDecade + 1 }, (_, i) => ({ x: i, label: percentileLabel(i) }));

  const tl = r.timeline;
  const tMax = Math.max(1, r.duration, ...tl.map((s) => s.t));
  const yMaxRate = Math.max(1, ...tl.map((s) => s.requestsPerSec)) * 1.1;
  const tStep = niceStep(tMax, 8);
  const tTicks: Array<{ x: number; label: string }> = [];
  for (let t = 0; t <= tMax + 1e-9; t += tStep) tTicks.push({ x: t, label: `${+t.toFixed(2)}s` });
  const errorPoints = tl.filter((s) => s.errors > 0).map((s): [number, number] => [s.t, 0]);

  const us = (v: number | null): string => `${fmt(v ?? 0)} µs`;
  const latency =
    r.latency.count === 0
      ? 'latency: no replies'
      : `latency p50 ${us(r.latency.p50)}, p99 ${us(r.latency.p99)}, p99.9 ${us(r.latency.p99_9)}, max ${us(r.latency.max)}`;
  const summary =
    `${fmt(r.throughput.requestsPerSec)} req/s, ${fmt(r.throughput.mbPerSec)} MB/s · ${latency} · ` +
    `errors ${r.errors.total} · client CPU ${r.cpu.percentOfOneCore}%`;
  const body = [
    text(M.left, 24, `upcase bench: ${describe(r)}`, 'font-size="15" font-weight="bold"'),
    text(M.left, 44, summary, 'font-size="12" fill="#333"'),
    panel({
      top: TITLE_H,
      title: 'Latency by percentile',
      xLabel: 'percentile (log scale of 1/(1 − p))',
      yLabel: 'latency (µs)',
      xTicks: decades,
      xMax: maxDecade,
      yMax: yMaxLat,
      series: [{ points: pts, color: BLUE, dots: false }],
    }),
    panel({
      top: TITLE_H + PANEL_H + M.top + M.bottom,
      title: 'Throughput over time (red dots: seconds with errors)',
      xLabel: 'time since the end of the warmup',
      yLabel: 'requests per second',
      xTicks: tTicks,
      xMax: tMax,
      yMax: yMaxRate,
      series: [
        { points: tl.map((s): [number, number] => [s.t, s.requestsPerSec]), color: BLUE, dots: true },
        { points: errorPoints, color: RED, dots: true },
      ],
    }),
  ].join('\n');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}">\n` +
    `<rect width="${W}" height="${H}" fill="white"/>\n${body}\n</svg>\n`
  );
}

/** An HTML page with the chart, the figures and the raw result. */
export function renderHtml(r: BenchResult): string {
  const rows: Array<[string, string]> = [
    ['requests/s', String(r.throughput.requestsPerSec)],
    ['MB/s', String(r.throughput.mbPerSec)],
    [
      'latency p50 / p90 / p99 / p99.9 / max (µs)',
      r.latency.count === 0
        ? 'no replies'
        : `${r.latency.p50} / ${r.latency.p90} / ${r.latency.p99} / ${r.latency.p99_9} / ${r.latency.max}`,
    ],
    [
      'errors (mismatch, timeout, closed, unexpected, socket)',
      `${r.errors.total} (${r.errors.mismatch}, ${r.errors.timeout}, ${r.errors.closed}, ${r.errors.unexpected}, ${r.errors.socket})`,
    ],
    ['client CPU (% of one core)', String(r.cpu.percentOfOneCore)],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>upcase bench: ${esc(describe(r))}</title>
<style>body{font-family:${FONT};margin:2em;color:#222}table{border-collapse:collapse}td{border:1px solid #ccc;padding:4px 10px}pre{background:#f5f5f5;padding:1em;overflow:auto}</style>
</head><body>
<h1>upcase bench</h1>
<p>${esc(describe(r))}</p>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>
${renderSvg(r)}
<details><summary>JSON result</summary><pre>${esc(JSON.stringify(r, null, 2))}</pre></details>
</body></html>
`;
}

const FONT_FILES = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'];

/** The chart as PNG, rendered with resvg (its binary ships inside its npm package). */
export async function renderPng(r: BenchResult): Promise<Buffer> {
  let Resvg: typeof import('@resvg/resvg-js').Resvg;
  try {
    ({ Resvg } = await import('@resvg/resvg-js'));
  } catch (err) {
    throw new UpcaseError('UPCASE_ERR_INVALID_ARG', 'PNG reports need the @resvg/resvg-js package; write .svg or .html instead', {
      cause: err,
    });
  }
  const resvg = new Resvg(renderSvg(r), {
    background: 'white',
    fitTo: { mode: 'width', value: W * 2 },
    font: { loadSystemFonts: true, fontFiles: FONT_FILES.filter((f) => existsSync(f)), defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/** Writes the chart of `r` to `file`; the format follows the extension (.svg, .png, .html). */
export async function writeReport(r: BenchResult, file: string): Promise<void> {
  const format = reportFormat(file);
  const data = format === '.svg' ? renderSvg(r) : format === '.html' ? renderHtml(r) : await renderPng(r);
  await writeFile(file, data);
}
