// The import rules of src/ (README.md, Development: the layers): imports only point down.
//   base        errors, stats, log, codec, addons (loading them, reading their constants)   imports nothing else of upcase
//   transports  tcp, udp, tls, proxy           base only (and each other)
//   client      client                         base and the pieces both ends share
//   server      server                         anything but the CLI; inside it, server.ts and cluster.ts
//               (facade, lifecycle, processes) on top of the parts (admission, dispatch, listeners, udp, metrics)
//   cli         cli                            anything
// Type-only imports count too (tsPreCompilationDeps): a type that points up is a
// dependency that points up.
const BASE = '^src/(errors|stats|log|addons)[.]ts$|^src/codec/';
const TRANSPORTS = '^src/(tcp|udp|tls|proxy)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Two modules that import each other (directly or through others) cannot be read, tested or moved apart.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'base-imports-only-base',
      severity: 'error',
      comment: 'errors, stats, log and the codec sit at the bottom: they import no transport, server, client or CLI code.',
      from: { path: BASE },
      to: { path: '^src/', pathNot: BASE },
    },
    {
      name: 'transports-import-no-server',
      severity: 'error',
      comment: 'Transports (tcp, udp, tls, proxy) import no server, client, bench or CLI code.',
      from: { path: TRANSPORTS },
      to: { path: '^src/(server|client|bench|cli)/|^src/(options|index)[.]ts$' },
    },
    {
      name: 'client-imports-no-server',
      severity: 'error',
      comment:
        'Clients import no server code: only the base, options, and what both ends share (src/udp/limits.ts, src/tls/credentials.ts).',
      from: { path: '^src/client/' },
      to: { path: '^src/(server|cli|bench|tcp|proxy)/|^src/udp/(?!limits[.]ts$)|^src/tls/(?!credentials[.]ts$)|^src/index[.]ts$' },
    },
    {
      name: 'bench-imports-no-server',
      severity: 'error',
      comment: 'The load generator is a client: no server or CLI code.',
      from: { path: '^src/bench/' },
      to: { path: '^src/(server|cli)/|^src/index[.]ts$' },
    },
    {
      name: 'server-parts-import-no-facade',
      severity: 'error',
      comment:
        'src/server/server.ts (the UpcaseServer facade and its lifecycle) and cluster.ts sit on top of the server parts (admission, dispatch, listeners, udp, transport-choice, connections, metrics): no part imports them back.',
      from: { path: '^src/server/', pathNot: '^src/server/(server|cluster)[.]ts$' },
      to: { path: '^src/server/(server|cluster)[.]ts$' },
    },
    {
      name: 'admission-hands-over-by-interface',
      severity: 'error',
      comment:
        'Admission decides which connections are served and owns their one close path; it hands them over through its ConnectionHandoff interface and imports no transport dispatch, stream handler or TLS.',
      from: { path: '^src/server/admission[.]ts$' },
      to: { path: '^src/server/dispatch[.]ts$|^src/tcp/connection[.]ts$|^src/tls/' },
    },
    {
      name: 'only-the-cli-imports-the-cli',
      severity: 'error',
      comment: 'The CLI is thin over the library: nothing in the library imports it.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'nothing-imports-the-entry-point',
      severity: 'error',
      comment: 'src/index.ts is the package entry: it re-exports the library, and nothing inside imports it back.',
      from: { path: '^src/' },
      to: { path: '^src/index[.]ts$' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve is a typo or a missing dependency (the optional addons may be unbuilt).',
      from: {},
      to: { couldNotResolve: true, pathNot: '^[.][.]/[.][.]/build/Release/[^/]+[.]node$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
