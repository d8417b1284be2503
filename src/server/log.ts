import pino, { type Logger } from 'pino';

/** A logger that drops everything: the library is quiet unless given one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Logs a repeated warning at most once per `intervalMs` per key, and says how
 * many were suppressed in between, so a flood cannot flood the log too.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}

/**
 * A remote address as it may appear in a log line. Addresses come from the OS or
 * from a parsed PROXY header, never from payload, but stay defensive anyway.
 */
export function safeAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return /^[0-9A-Za-z:.%_-]{1,64}$/.test(address) ? address : JSON.stringify(address.slice(0, 64));
}
