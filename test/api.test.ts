/**
 * The public API is deliberate: every name the main entry (`upcase`) and the
 * load generator's entry (`upcase/bench`) export has a doc comment, internals
 * stay in their modules, and the load generator is not in the main entry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const MAIN = fileURLToPath(new URL('../src/index.ts', import.meta.url));
const BENCH = fileURLToPath(new URL('../src/bench/index.ts', import.meta.url));

/** Every exported name of each entry, with its doc comment (empty if none). */
function exportsOf(...files: string[]): Map<string, Map<string, string>> {
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const result = new Map<string, Map<string, string>>();
  for (const file of files) {
    const names = new Map<string, string>();
    const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    for (const symbol of checker.getExportsOfModule(module)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      names.set(symbol.name, ts.displayPartsToString(target.getDocumentationComment(checker)).trim());
    }
    result.set(file, names);
  }
  return result;
}

const entries = exportsOf(MAIN, BENCH);
const main = entries.get(MAIN)!;
const bench = entries.get(BENCH)!;

test('every exported name has a doc comment', () => {
  const undocumented = [...entries].flatMap(([file, names]) =>
    [...names].filter(([, doc]) => doc === '').map(([name]) => `${file.endsWith('bench/index.ts') ? 'upcase/bench' : 'upcase'}: ${name}`),
  );
  assert.deepEqual(undocumented, []);
});

test('the main entry exports what a library user needs', () => {
  for (const name of [
    'upcase',
    'Upcaser',
    'createUpcaseStream',
    'startServer',
    'UpcaseServer',
    'ServerOptions',
    'SERVER_DEFAULTS',
    'tcpRequest',
    'tcpStream',
    'UdpClient',
    'Pinger',
    'UpcaseError',
    'NetworkError',
    'exitStatusOf',
    'startMetricsServer',
    'ClusterPrimary',
    'ClusterWorker',
  ]) {
    assert.ok(main.has(name), `upcase exports ${name}`);
  }
  assert.ok(bench.has('runBench') && bench.has('BenchOptions') && bench.has('writeReport'));
});

test('internals and the load generator are not in the main entry', () => {
  const internals = [
    'restartDelay',
    'RESTART_BACKOFF',
    'clusterWorkerSlot',
    'INCOMPLETE',
    'sequenceLength',
    'incompleteTailStart',
    'readProxyHeader',
    'networkError',
    'serializeError',
    'deserializeError',
    'normalizeServerOptions',
    'looksRateLimited',
    'RttStats',
    'DatagramPolicy',
    'createDatagramHandler',
    'loadTlsCredentials',
    'TlsAcceptor',
  ];
  assert.deepEqual(
    internals.filter((name) => main.has(name)),
    [],
  );
  assert.deepEqual(
    [...bench.keys()].filter((name) => main.has(name)),
    [],
    'the load generator lives at upcase/bench',
  );
  for (const name of ['makePayloads', 'writeSeq', 'readSeq', 'SEQ_DIGITS', 'reportFormat', 'normalizeBenchOptions']) {
    assert.equal(bench.has(name), false, `upcase/bench does not export ${name}`);
  }
});
