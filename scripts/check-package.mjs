#!/usr/bin/env node
// Checks the package as users get it: packs it (`npm pack`, which builds dist/), lints the tarball
// with publint and @arethetypeswrong/cli, then installs it into a temporary directory and imports
// `upcase` and `upcase/bench` there, as a user's project would.
//
// attw runs with `--profile esm-only`: upcase is ESM only (Node >= 20), so the only resolutions it
// skips are CommonJS `require` and the pre-exports `node10` resolution, which cannot see subpaths.
//
// The install is offline and quick: the tarball is unpacked into node_modules/upcase, and each
// dependency it declares (and only those) is linked to this checkout's node_modules, so an import
// of an undeclared package or of a file left out of "files" fails here.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (command, args, options = {}) => execFileSync(command, args, { stdio: 'inherit', timeout: 120_000, ...options });

const work = mkdtempSync(join(tmpdir(), 'upcase-package-'));
try {
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8', timeout: 120_000 }),
  );
  const tarball = join(work, packed[0].filename);
  console.log(`packed ${packed[0].filename}: ${packed[0].entryCount} files, ${packed[0].size} bytes`);

  run(bin('publint'), ['run', tarball, '--strict']);
  run(bin('attw'), [tarball, '--profile', 'esm-only']);

  const project = join(work, 'project');
  const installed = join(project, 'node_modules', 'upcase');
  mkdirSync(installed, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user', private: true, type: 'module' }));
  run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    const link = join(project, 'node_modules', dep);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(root, 'node_modules', dep), link, 'dir');
  }
  const check = `
    const main = await import('upcase');
    const bench = await import('upcase/bench');
    const problems = [];
    for (const name of ['upcase', 'Upcaser', 'startServer', 'UpcaseServer', 'tcpRequest', 'UdpClient', 'Pinger', 'exitStatusOf', 'ClusterPrimary']) {
      if (main[name] === undefined) problems.push('upcase: ' + name + ' is missing');
    }
    if ('runBench' in main) problems.push('upcase: runBench belongs to upcase/bench');
    if (typeof bench.runBench !== 'function') problems.push('upcase/bench: runBench is missing');
    if (main.upcase('straße').toString() !== 'STRASSE') problems.push('upcase: the codec does not work');
    if (problems.length > 0) { console.error(problems.join('\\n')); process.exit(1); }
    console.log('import("upcase") and import("upcase/bench") work from an install of the tarball');
  `;
  run(process.execPath, ['--input-type=module', '-e', check], { cwd: project });
  run(process.execPath, [join(installed, 'bin', 'upcase.js'), '--version'], { cwd: project });
} finally {
  rmSync(work, { recursive: true, force: true });
}
