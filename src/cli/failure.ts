import { exitStatusOf } from '../errors.js';

/**
 * The one way every command reports a failure: one line on stderr,
 * `upcase: <message>`, and the exit status {@link exitStatusOf} gives
 * (2 for a usage or configuration error, 1 for a network error or timeout).
 */
export function reportFailure(err: unknown): number {
  process.stderr.write(`upcase: ${err instanceof Error ? err.message : String(err)}\n`);
  return exitStatusOf(err);
}
