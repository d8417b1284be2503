// The status page in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core, which never downloads one) loads `/` from `upcase serve --metrics-port` while the
// test holds 37 connections open from three source addresses. No console errors (the page's CSP lets
// only its own inline script run), the numbers shown match /metrics and /connections, the page updates
// itself, and it works with scripts off. A screenshot is kept in the OS temp dir.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { allConnections, countByAddress, holdConnections } from '../helpers/operator.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { scrape } from '../helpers/operator.js';
import { type ServeProcess, spawnServe } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : 'chromium is not installed (Debian package chromium; .ci/run installs it)';
const HELD = 37;
export const SCREENSHOT = join(tmpdir(), 'upcase-status-page.png');

describe('the status page in headless Chromium', { skip }, () => {
  let pki: TestPki;
  let serve: ServeProcess;
  let base = '';
  let browser: Browser;
  let sockets: net.Socket[] = [];
  let port = 0;

  before(async () => {
    pki = makePki();
    serve = spawnServe([
      '--metrics-port',
      '0',
      '--max-connections',
      '50',
      '--log-level',
      'warn',
      '--tls-cert',
      pki.server.cert,
      '--tls-key',
      pki.server.key,
      '--tls-port',
      '0',
    ]);
    const s = await serve.ready();
    base = s.metrics!;
    port = Number((await serve.line(/tcp\+udp 127\.0\.0\.1:(\d+)/))[1]);
    sockets = await holdConnections(port, HELD);
    // Some UDP traffic, so that the rates have something to show.
    const udp = dgram.createSocket('udp4');
    for (let i = 0; i < 20; i++) udp.send(`ping ${i}`, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    udp.close();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close();
    for (const s of sockets) s.destroy();
    if (serve !== undefined) {
      serve.signal('SIGTERM');
      await serve.exitWithin(15_000);
    }
    pki?.remove();
  });

  /** A page that records console errors and uncaught exceptions. */
  async function open(javaScriptEnabled: boolean): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    const res = await page.goto(`${base}/`, { timeout: 15_000 });
    assert.equal(res?.status(), 200);
    return { page, errors };
  }

  /** Waits (bounded) until the page shows a rendering other than the one made at `previous`. */
  const nextRendering = async (page: Page, previous: string | null): Promise<void> => {
    await until(async () => (await page.getAttribute('footer time', 'datetime')) !== previous, 'a new rendering of the page', 10_000);
  };

  const text = async (page: Page, selector: string): Promise<string> =>
    ((await page.textContent(selector, { timeout: 5000 })) ?? '').trim();

  it(`shows ${HELD} connections, matching /metrics and /connections, and updates itself`, async () => {
    const { page, errors } = await open(true);
    const m = await scrape(base);
    const list = await allConnections(base);
    assert.equal(list.total, HELD);
    assert.equal(m.get('upcase_connections_open'), HELD);
    assert.equal(await text(page, '#connections-open'), String(HELD));
    assert.equal(await text(page, '#connections-limit'), String(m.get('upcase_max_connections')));
    assert.equal(await text(page, '#connections-total-listed'), String(list.total));
    assert.equal(
      await text(page, '#version'),
      [...m.keys()].find((k) => k.startsWith('upcase_build_info'))!.match(/version="([^"]+)"/)![1],
    );

    // The clients table: one row per address, with the counts /connections gives.
    const rows = await page.$$eval('#clients tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
    );
    const shown = Object.fromEntries(rows.map((r) => [r[0], Number(r[1])]));
    assert.deepEqual(shown, countByAddress(list));
    assert.deepEqual(shown, { '127.0.0.1': 13, '127.0.0.2': 12, '127.0.0.3': 12 });
    assert.equal(await page.$$eval('#connections tbody tr', (trs) => trs.length), 20, 'the 20 oldest, one per row');
    assert.match(await text(page, '#tls-certificate'), /days left/);
    assert.equal(await text(page, '#drops-rate_limited'), String(m.get('upcase_udp_drops_total{reason="rate_limited"}')));

    // The inline script swaps in a new rendering every 2 s: the timestamp moves and the rates appear.
    const first = await page.getAttribute('footer time', 'datetime');
    await nextRendering(page, first);
    assert.notEqual(await text(page, '#rate-bytes'), '–');
    assert.equal(await text(page, '#connections-open'), String(HELD));
    // Traffic across the next rendering, so that the rates show it (bounded: 60 datagrams in 3 s).
    const second = await page.getAttribute('footer time', 'datetime');
    const udp = dgram.createSocket('udp4');
    for (let i = 0; i < 60; i++) {
      udp.send(`traffic ${i}`, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
    }
    udp.close();
    await nextRendering(page, second);
    assert.notEqual(await text(page, '#rate-datagrams'), '0 / 0');
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`status page screenshot: ${SCREENSHOT}`);
    assert.deepEqual(errors, [], 'no console errors');
    await page.context().close();
  });

  it('works with scripts off: the same table, reloaded by a meta refresh', async () => {
    const { page, errors } = await open(false);
    assert.equal(await text(page, '#connections-open'), String(HELD));
    const first = await page.getAttribute('footer time', 'datetime');
    // No script runs: only the <noscript> meta refresh can bring a new rendering.
    await nextRendering(page, first);
    assert.equal(await text(page, '#connections-open'), String(HELD));
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
