import { createTraceWriter, TRACE_NOTICE, type Tracer } from '../trace.js';

/**
 * `--trace` for `upcase serve` and `upcase client`: each socket step in the
 * textbook's words on stderr (stdout keeps the ready line and the replies). The flag
 * itself is a row of each command's option table (`trace`, `UPCASE_TRACE`).
 */

/** A tracer writing to stderr; {@link announceTrace} first, once its settings are accepted. */
export function traceWriter(): Tracer {
  return createTraceWriter((line) => process.stderr.write(line));
}

/** Says that the trace shows payload (and `more`, e.g. which transports). */
export function announceTrace(more?: string): void {
  process.stderr.write(`${TRACE_NOTICE}${more === undefined ? '' : `; ${more}`}\n`);
}

/** {@link announceTrace}, then {@link traceWriter}. */
export function startTrace(more?: string): Tracer {
  announceTrace(more);
  return traceWriter();
}

/** The transports `serve --trace` runs on, and why. */
export const SERVE_TRACE_TRANSPORTS = 'TCP on the stream transport, UDP on node:dgram (the native transports do not report each read)';
