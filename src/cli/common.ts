/** Exit codes shared by every subcommand. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** A usage or configuration error: a bad flag, variable or combination (as the library judges it). */
export const EXIT_USAGE = 2;

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
