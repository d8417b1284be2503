/** Exit codes shared by every subcommand (1 and 2 as the library's exitStatusOf gives them). */
export const EXIT_OK = 0;
export { EXIT_FAILURE, EXIT_USAGE } from '../errors.js';

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
