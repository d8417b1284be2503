#!/usr/bin/env node
// Builds the optional native addons at install time (`npm ci`, `npm rebuild upcase`):
//   upcase_udp    the UDP transport (native/udp_batch.c)
//   upcase_tcp    the TCP transport (native/tcp_serve.c with the C codec, native/codec.c)
//   upcase_codec  the C codec alone, for the TypeScript codec's large chunks (native/codec_addon.c)
//   upcase_bench  the load generator's engine thread (native/bench_engine.c)
// N-API addons link against nothing, so the C compiler alone builds them, from the Node.js
// headers installed beside node (node-gyp only when those are missing). `CC`, `CFLAGS` and
// `LDFLAGS` are honoured (scripts/compiler.mjs). Each addon is built and then loaded by a
// fresh node on its own: what is built, what is not and why are said addon by addon, and
// written to <dir>/native-build.json, where the loaders find the reason at run time.
// It never fails the install: without an addon upcase uses node:dgram, net.Socket streams
// and the TypeScript codec (same behaviour, lower throughput).
//
//   node scripts/build-native.mjs [--out DIR] [--only NAME,...] [--with FILE.c] [--quiet]
//   (--with: a C file compiled into every addon too, e.g. the sanitizer build's report hook)
//   UPCASE_NATIVE=0 skips the build.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compiler } from './compiler.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    only: { type: 'string' },
    with: { type: 'string', multiple: true },
    quiet: { type: 'boolean', default: false },
  },
});
const OUT = resolve(values.out ?? join(ROOT, 'build', 'Release'));
const say = (message) => process.stderr.write(`upcase: ${message}\n`);
// The fix for a user of the package; in upcase's own checkout `npm run build:native` does the same.
const cc = compiler();
const FIX = 'install a C compiler (e.g. `apt-get install gcc`) and run `npm rebuild upcase`';

/** The addons, in build order: what each serves and what runs without it. */
const ADDONS = [
  { name: 'upcase_udp', what: 'UDP transport', without: 'UDP uses node:dgram', sources: ['native/udp_batch.c'], linuxOnly: true },
  {
    name: 'upcase_tcp',
    what: 'TCP transport',
    without: 'TCP uses net.Socket streams',
    sources: ['native/tcp_serve.c', 'native/codec_napi.c', 'native/codec.c'],
    linuxOnly: true,
  },
  {
    name: 'upcase_codec',
    what: 'C codec',
    without: 'the codec runs in TypeScript only',
    sources: ['native/codec_addon.c', 'native/codec_napi.c', 'native/codec.c'],
    linuxOnly: false,
  },
  {
    name: 'upcase_bench',
    what: 'bench engine',
    without: '`upcase bench` runs on its JavaScript engine',
    sources: ['native/bench_engine.c'],
    flags: ['-pthread'],
    linuxOnly: true,
  },
];
const only = values.only?.split(',');
const wanted = ADDONS.filter((a) => only === undefined || only.includes(a.name));

/** Writes the outcome where the loaders look (src/addons.ts) and says it, addon by addon. */
function report(results, compilerLabel) {
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, 'native-build.json');
  // With --only, the other addons' records stay as they were.
  let earlier = {};
  try {
    if (only !== undefined) earlier = JSON.parse(readFileSync(file, 'utf8')).addons ?? {};
  } catch {}
  writeFileSync(file, `${JSON.stringify({ compiler: compilerLabel, addons: { ...earlier, ...results } }, null, 2)}\n`);
  if (values.quiet) return;
  const built = wanted.filter((a) => results[a.name].built);
  const missing = wanted.filter((a) => !results[a.name].built);
  if (built.length > 0) {
    say(`built ${built.map((a) => `${a.name}.node (${a.what})`).join(', ')} in ${OUT} with ${compilerLabel}`);
  }
  for (const a of built.filter((x) => results[x.name].loads === false)) {
    // Expected when cross-compiling (CC=aarch64-linux-gnu-gcc): the files are for another machine.
    say(`but this node cannot load ${a.name}.node (${results[a.name].reason}); here ${a.without}`);
  }
  for (const a of missing) say(`not built: ${a.name}.node (${a.what}): ${results[a.name].reason}; ${a.without}`);
  if (missing.length === 0) return;
  if (built.length === 0) {
    say(
      'no native addon was built: upcase works, on node:dgram, net.Socket streams and the TypeScript codec (and `upcase bench` on its JavaScript engine), more slowly.',
    );
  }
  say(`to build them, ${FIX}; \`upcase serve\` says which transports it runs on`);
}

if (process.env.UPCASE_NATIVE === '0') {
  report(Object.fromEntries(wanted.map((a) => [a.name, { built: false, reason: 'UPCASE_NATIVE=0 at install' }])), 'none');
  process.exit(0);
}

// The headers installed beside node (or named by npm's nodedir), rather than downloading them.
const localHeaders = join(dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (existsSync(join(localHeaders, 'include/node/node_api.h')) ? localHeaders : undefined);
const include = nodedir === undefined ? undefined : join(nodedir, 'include/node');
// Hidden symbols: the TCP and codec addons both hold the codec, and neither may bind to the other's.
const BASE_FLAGS = ['-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-fvisibility=hidden', '-shared', '-fPIC'];

/** The last lines of a compiler's complaint, enough to see the first error. */
function firstLines(text, count = 6) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => /error|fatal|not found|No such file/i.test(l));
  return (errors.length > 0 ? errors : lines).slice(0, count).join(' | ');
}

/** Compiles one addon to OUT; returns null when it worked, else why not. */
function compileOne(addon) {
  const target = join(OUT, `${addon.name}.node`);
  rmSync(target, { force: true });
  const flags = [...BASE_FLAGS, ...(addon.flags ?? []), `-DNODE_GYP_MODULE_NAME=${addon.name}`, `-I${include}`];
  if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
  const sources = [...addon.sources.map((s) => join(ROOT, s)), ...(values.with ?? []).map((s) => resolve(s))];
  const run = spawnSync(cc.command, cc.argv([...flags, ...sources, '-o', target]), {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  if (run.error?.code === 'ENOENT') return `no C compiler (\`${cc.command}\` not found)`;
  if (run.error) return `${cc.command}: ${run.error.message}`;
  if (run.status !== 0) {
    // The whole complaint goes to stderr too, for whoever reads the install log.
    if (!values.quiet) process.stderr.write(run.stderr);
    return `${cc.label} failed (${run.signal ?? `exit ${run.status}`}): ${firstLines(run.stderr + run.stdout)}`;
  }
  return null;
}

/** node-gyp (under npm), when no headers were found: it fetches them. All addons or none. */
function viaNodeGyp() {
  const nodeGyp = process.env.npm_config_node_gyp;
  if (!nodeGyp || !existsSync(nodeGyp)) return 'no Node.js headers (include/node/node_api.h) beside node, and no node-gyp to fetch them';
  try {
    execFileSync(process.execPath, [nodeGyp, 'rebuild', '--loglevel=warn'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    return `node-gyp failed: ${firstLines(String(err.stderr ?? err.message))}`;
  }
  const built = join(ROOT, 'build', 'Release');
  if (built !== OUT) {
    mkdirSync(OUT, { recursive: true });
    for (const f of readdirSync(built)) if (f.endsWith('.node')) execFileSync('cp', [join(built, f), join(OUT, f)]);
  }
  return null;
}

/** Whether a fresh node (this environment: LD_PRELOAD and all) can load the addon: null, or the loader's complaint. */
function loads(addon) {
  const file = join(OUT, `${addon.name}.node`);
  const run = spawnSync(process.execPath, ['-e', 'process.dlopen({ exports: {} }, process.argv[1])', file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (run.status === 0) return null;
  return firstLines(run.stderr, 2) || run.signal || `exit ${run.status}`;
}

const results = {};
const supported = (a) => !a.linuxOnly || process.platform === 'linux';
for (const a of wanted.filter((x) => !supported(x))) results[a.name] = { built: false, reason: `Linux only (this is ${process.platform})` };
const toBuild = wanted.filter(supported);
let gypFailure = null;
if (toBuild.length > 0 && include === undefined) gypFailure = viaNodeGyp();
else mkdirSync(OUT, { recursive: true });
for (const a of toBuild) {
  const why = include === undefined ? gypFailure : compileOne(a);
  if (why !== null) {
    results[a.name] = { built: false, reason: why };
    continue;
  }
  if (!existsSync(join(OUT, `${a.name}.node`))) {
    results[a.name] = { built: false, reason: 'the compiler reported success but produced no file' };
    continue;
  }
  const loadFailure = loads(a);
  results[a.name] = loadFailure === null ? { built: true, loads: true } : { built: true, loads: false, reason: loadFailure };
}
report(results, include === undefined ? 'node-gyp' : cc.label);
