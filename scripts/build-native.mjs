#!/usr/bin/env node
// Builds the optional native transports at install time: UDP (native/udp_batch.c)
// and TCP (native/tcp_serve.c with the C codec, native/codec.c). It never fails the
// install: without a compiler upcase uses node:dgram and net.Socket streams instead
// (same behaviour, lower throughput). Set UPCASE_NATIVE=0 to skip the build.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const say = (message) => process.stderr.write(`upcase: ${message}\n`);

if (process.platform !== 'linux') {
  say('the native transports are Linux-only; using node:dgram and net.Socket streams');
  process.exit(0);
}
if (process.env.UPCASE_NATIVE === '0') {
  say('UPCASE_NATIVE=0: not building the native transports');
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
const ADDONS = {
  upcase_udp: ['native/udp_batch.c'],
  upcase_tcp: ['native/tcp_serve.c', 'native/codec.c'],
};

function viaCompiler() {
  const include = join(nodedir ?? localHeaders, 'include/node');
  if (!existsSync(join(include, 'node_api.h'))) throw new Error(`no Node.js headers in ${include}`);
  mkdirSync(join(root, 'build/Release'), { recursive: true });
  for (const [name, sources] of Object.entries(ADDONS)) {
    execFileSync(
      process.env.CC || 'cc',
      ['-O2', '-shared', '-fPIC', `-DNODE_GYP_MODULE_NAME=${name}`, `-I${include}`, ...sources, '-o', `build/Release/${name}.node`],
      { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
}

const built = 'build/Release/upcase_udp.node and upcase_tcp.node';
try {
  if (!viaNodeGyp()) viaCompiler();
  say(`built the native transports (${built})`);
} catch (_err) {
  try {
    viaCompiler();
    say(`built the native transports with the C compiler directly (${built})`);
  } catch (err2) {
    say(`native transports not built (${err2.message.split('\n')[0]}); UDP uses node:dgram, TCP net.Socket streams`);
  }
}
