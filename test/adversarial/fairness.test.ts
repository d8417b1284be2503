// Bulk senders against everyone else (issue 16): 200 clients send `ΐß` text non-stop and never read.
// On either TCP transport, every bulk sender is accepted promptly (node:net accepts one connection per
// turn of the event loop, so long turns starve accepts), and a normal client's request is answered at
// once, not after seconds behind the others' work.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { loadNativeTcp } from '../../src/tcp/native.js';
import { scrape } from '../helpers/operator.js';
import { tcpRoundTrip } from '../helpers/roundtrip.js';
import { spawnServe } from '../helpers/serve.js';
import { delay, until, within } from '../helpers/wait.js';

const SENDERS = fileURLToPath(new URL('../fixtures/bulk-senders.mjs', import.meta.url));
const BULK = 200;
/** The bound on a normal client's round trip (the acceptance: under 1.5 s; it takes milliseconds). */
const REPLY_MS = 1500;

const transports = ['stream', ...(loadNativeTcp() === null ? [] : ['native'])];

describe('200 bulk senders that never read', () => {
  for (const transport of transports) {
    it(`${transport} transport: every sender is accepted, and a normal client is answered at once`, async (t) => {
      const p = spawnServe(['--no-udp', '--tcp-transport', transport, '--metrics-port', '0', '--log-level', 'warn'], { t });
      const { port, metrics } = await p.ready();
      const attack = spawn(process.execPath, [SENDERS, String(port), String(BULK), '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await within(20_000, 'the bulk senders connected', once(attack.stdout!, 'data'));
        const metric = async (name: string): Promise<number> => (await scrape(metrics!)).get(name) ?? 0;
        await until(async () => (await metric('upcase_connections_open')) >= BULK, 'every bulk sender accepted', 15_000, 100);
        for (let i = 0; i < 5; i++) {
          const reply = await within(REPLY_MS, `normal client ${i} answered`, tcpRoundTrip(port, `normal ${i}`));
          assert.equal(reply.toString(), `NORMAL ${i}`);
          await delay(200);
        }
      } finally {
        attack.kill();
      }
    });
  }
});
