#!/usr/bin/env node
// The CLI is compiled TypeScript; `npm ci` builds it through the `prepare` script.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`upcase: ${err?.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
