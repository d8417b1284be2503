#!/usr/bin/env node
// Builds the optional native UDP transport (native/udp_batch.c) at install time.
// It never fails the install: without a compiler upcase uses node:dgram instead
// (same behaviour, lower UDP throughput). Set UPCASE_NATIVE=0 to skip the build.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const say = (message) => process.stderr.write(`upcase: ${message}\n`);

if (process.platform !== 'linux') {
  say('native UDP transport is Linux-only; using node:dgram');
  process.exit(0);
}
if (process.env.UPCASE_NATIVE === '0') {
  say('UPCASE_NATIVE=0: not building the native UDP transport');
  process.exit(0);
}

// node-gyp wants headers; point it at the ones installed beside node rather than downloading them.
const localHeaders = join(dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (existsSync(join(localHeaders, 'include/node/node_api.h')) ? localHeaders : undefined);
const nodeGyp = process.env.npm_config_node_gyp;

function viaNodeGyp() {
  if (!nodeGyp || !existsSync(nodeGyp)) return false;
  const args = [nodeGyp, 'rebuild', '--loglevel=warn'];
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  execFileSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  return true;
}

// N-API addons link against nothing, so the compiler alone can build one.
function viaCompiler() {
  const include = join(nodedir ?? localHeaders, 'include/node');
  if (!existsSync(join(include, 'node_api.h'))) throw new Error(`no Node.js headers in ${include}`);
  mkdirSync(join(root, 'build/Release'), { recursive: true });
  execFileSync(
    process.env.CC || 'cc',
    ['-O2', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=upcase_udp', `-I${include}`, 'native/udp_batch.c', '-o', 'build/Release/upcase_udp.node'],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

try {
  if (!viaNodeGyp()) viaCompiler();
  say('built the native UDP transport (build/Release/upcase_udp.node)');
} catch (err) {
  try {
    viaCompiler();
    say('built the native UDP transport with the C compiler directly');
  } catch (err2) {
    say(`native UDP transport not built (${err2.message.split('\n')[0]}); UDP uses node:dgram`);
  }
}
