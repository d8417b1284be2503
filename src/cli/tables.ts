import type { Table } from '../options/table.js';
import { BENCH_COMMAND_OPTIONS } from './bench.js';
import { CLIENT_COMMAND_OPTIONS } from './client.js';
import { PING_COMMAND_OPTIONS } from './ping.js';
import { SERVE_OPTIONS } from './serve.js';

/** Every command's option table, by command name: what `--help` and the docs' tables show. */
export const COMMAND_OPTIONS: Readonly<Record<string, Table>> = {
  serve: SERVE_OPTIONS,
  client: CLIENT_COMMAND_OPTIONS,
  ping: PING_COMMAND_OPTIONS,
  bench: BENCH_COMMAND_OPTIONS,
};

/** The docs that hold generated option tables (paths from the repository root). */
export const DOCS_WITH_OPTION_TABLES = ['docs/cli.md', 'docs/operations.md', 'docs/benchmarks.md'] as const;
