/** Exit codes shared by every subcommand (1 and 2 as the library's exitStatusOf gives them). */
export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../errors.js';
/** `upcase client`: every reply came, but one was not the uppercase of its message (typically truncated by the server). */
export const EXIT_BAD_REPLY = 3;

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
