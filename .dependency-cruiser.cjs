// The import rules of src/ (README.md, Development: the layers): imports only point down.
//   base        errors, stats, log, codec, addons (loading them, reading their constants)   imports nothing else of upcase
//   transports  tcp, udp, tls, proxy           base only (and each other)
//   client      client                         base and the pieces both ends share
//   server      server                         anything but the CLI
//   cli         cli                            anything
// Type-only imports count too (tsPreCompilationDeps): a type that points up is a
// dependency that points up.
const BASE = '^src/(errors|stats|log|addons)[.]ts$|^src/codec/';
const TRANSPORTS = '^src/(tcp|udp|tls|proxy)/';

/** A rule no import may break: `npm run lint` fails on any. */
const forbid = (name, comment, from, to) => ({ name, severity: 'error', comment, from, to });

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    forbid(
      'no-circular',
      'Two modules that import each other (directly or through others) cannot be read, tested or moved apart.',
      {},
      { circular: true },
    ),
    forbid(
      'base-imports-only-base',
      'errors, stats, log and the codec sit at the bottom: they import no transport, server, client or CLI code.',
      { path: BASE },
      { path: '^src/', pathNot: BASE },
    ),
    forbid(
      'transports-import-no-server',
      'Transports (tcp, udp, tls, proxy) import no server, client, bench or CLI code.',
      { path: TRANSPORTS },
      { path: '^src/(server|client|bench|cli)/|^src/(options|index)[.]ts$' },
    ),
    forbid(
      'client-imports-no-server',
      'Clients import no server code: only the base, options, and what both ends share (src/udp/limits.ts, src/tls/credentials.ts).',
      { path: '^src/client/' },
      { path: '^src/(server|cli|bench|tcp|proxy)/|^src/udp/(?!limits[.]ts$)|^src/tls/(?!credentials[.]ts$)|^src/index[.]ts$' },
    ),
    forbid(
      'bench-imports-no-server',
      'The load generator is a client: no server or CLI code.',
      { path: '^src/bench/' },
      { path: '^src/(server|cli)/|^src/index[.]ts$' },
    ),
    forbid(
      'server-parts-import-no-facade',
      'src/server/server.ts (the UpcaseServer facade and its lifecycle) and cluster.ts sit on top of the server parts (admission, dispatch, listeners, udp, transport-choice, connections, metrics, process, cluster/): no part imports them back.',
      { path: '^src/server/', pathNot: '^src/server/(server|cluster|process|signals)[.]ts$|^src/server/cluster/' },
      { path: '^src/server/(server|cluster)[.]ts$' },
    ),
    forbid(
      'admission-hands-over-by-interface',
      'Admission decides which connections are served and owns their one close path; it hands them over through its ConnectionHandoff interface and imports no transport dispatch or TLS. Its connection record extends the stream transport\'s per-connection record (StreamConnection in src/tcp/connection.ts: one object per connection), which it may import for that alone; it calls no transport (serveStream, handleConnection): dispatch does.',
      { path: '^src/server/admission[.]ts$' },
      { path: '^src/server/dispatch[.]ts$|^src/tls/' },
    ),
    forbid(
      'admission-calls-no-transport',
      'admission.ts may build on src/tcp/connection.ts only through its record type (see admission-hands-over-by-interface); nothing else in src/tcp/ or the other transports except the PROXY reader.',
      { path: '^src/server/admission[.]ts$' },
      { path: '^src/(tcp|udp|tls)/(?!connection[.]ts$)' },
    ),
    forbid(
      'only-the-cli-imports-the-cli',
      'The CLI is thin over the library: nothing in the library imports it.',
      { path: '^src/', pathNot: '^src/cli/' },
      { path: '^src/cli/' },
    ),
    forbid(
      'nothing-imports-the-entry-point',
      'src/index.ts is the package entry: it re-exports the library, and nothing inside imports it back.',
      { path: '^src/' },
      { path: '^src/index[.]ts$' },
    ),
    forbid(
      'no-unresolvable',
      'An import that does not resolve is a typo or a missing dependency (the optional addons may be unbuilt).',
      {},
      { couldNotResolve: true, pathNot: '^[.][.]/[.][.]/build/Release/[^/]+[.]node$' },
    ),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
