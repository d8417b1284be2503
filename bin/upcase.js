#!/usr/bin/env node
// The CLI is compiled TypeScript; `npm ci` builds it through the `prepare` script.

// SIGHUP's default action ends a process, and a certificate-renewal hook may send it while the
// server is still loading: catch it from the first line that runs, before any module loads. The real
// handler (reloadOnHangup, src/server/signals.ts) goes in before the server reads the certificate,
// so a SIGHUP caught here needs nothing more: the files it announces are the ones read at start.
if (process.argv[2] === 'serve') process.on('SIGHUP', () => {});
const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`upcase: ${err?.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
