#!/usr/bin/env node
// The stream transport's bulk UTF-8 figure with and without the C codec under the TypeScript
// codec (upcase_codec.node, src/codec/native.ts): two `upcase serve --tcp-transport stream`,
// one with UPCASE_NATIVE=0 (the TypeScript codec alone: what the stream transport ran before
// the codec addon), measured in turn with the suite's bulk workload (bench/loadgen, output
// checked byte for byte). See docs/benchmarks.md.
//
//   npm run build && node bench/stream-codec.mjs [--rounds N] [--bytes N] [--payload utf8|ascii]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileCommand } from '../scripts/compiler.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    bytes: { type: 'string', default: String(256 * 1024 ** 2) },
    payload: { type: 'string', default: 'utf8' },
  },
});
const rounds = Number(values.rounds);
const bytes = Number(values.bytes);
const { makeBody } = await import(join(ROOT, 'dist', 'bench', 'payload.js'));
const { Upcaser } = await import(join(ROOT, 'dist', 'codec', 'upcase.js'));

const work = mkdtempSync(join(os.tmpdir(), 'upcase-stream-codec-'));
const children = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});
const loadgen = join(work, 'loadgen');
execFileSync(...compileCommand(['-O2', '-o', loadgen, join(ROOT, 'bench', 'loadgen', 'loadgen.c')]), { stdio: 'inherit' });
const body = makeBody(values.payload, 64 * 1024, 42);
const reference = new Upcaser({ native: false });
writeFileSync(join(work, 'pattern'), body);
writeFileSync(join(work, 'expect'), Buffer.concat([reference.push(body), reference.end()]));

/** `upcase serve --tcp-transport stream` on a free port, once it is ready. */
async function serve(env) {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--no-udp', '--tcp-transport', 'stream', '--log-level', 'warn'];
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'upcase.js'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  while (!/\nTransports: .*\n/.test(out)) {
    if (Date.now() > deadline) throw new Error(`upcase serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, line: out.split('\n')[1] };
}

function bulk(port) {
  const args = [
    'bulk',
    '-p',
    String(port),
    '-B',
    String(bytes),
    '--pattern',
    join(work, 'pattern'),
    '--expect',
    join(work, 'expect'),
    '-d',
    '120',
  ];
  const out = execFileSync(loadgen, args, { encoding: 'utf8', timeout: 150_000 });
  const j = JSON.parse(out.trim().split('\n').at(-1));
  if (!j.correct) throw new Error('wrong output');
  return j.mbps;
}

const servers = { typescript: await serve({ UPCASE_NATIVE: '0' }), 'typescript + C codec': await serve({}) };
for (const [name, s] of Object.entries(servers)) console.error(`${name}: ${s.line}`);
const figures = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, s] of Object.entries(servers)) figures[name].push(bulk(s.port));
  console.error(
    `round ${r + 1}: ${Object.entries(figures)
      .map(([k, v]) => `${k} ${Math.round(v.at(-1))} MB/s`)
      .join(', ')}`,
  );
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const before = median(figures.typescript);
const after = median(figures['typescript + C codec']);
const best = (v) => Math.max(...v);
console.log(
  `stream transport, bulk ${values.payload}, ${bytes / 1024 ** 2} MiB per run, ${rounds} rounds: TypeScript codec median ${Math.round(before)} MB/s (best ${Math.round(best(figures.typescript))}), with the C codec median ${Math.round(after)} MB/s (best ${Math.round(best(figures['typescript + C codec']))}); ${(after / before).toFixed(2)}× the median`,
);
for (const c of children) c.kill('SIGTERM');
process.exit(0);
