import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';

/** A logger that drops everything: the library is quiet unless given one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

interface Window {
  /** When the current window opened (monotonic ms). */
  at: number;
  /** Warnings swallowed since then. */
  suppressed: number;
  /** Fields and message of the latest swallowed warning, for the summary line. */
  fields: Record<string, unknown>;
  message: string;
  timer: NodeJS.Timeout | null;
}

/**
 * Logs a repeated warning at most once per `intervalMs` per key, so a flood
 * (refused connections, rate-limited datagrams) cannot flood the log too. The
 * first warning of a window is logged at once; the ones swallowed after it are
 * reported as one line with a `suppressed` count when the window ends, so the
 * count is never lost when the flood stops. Keys must come from a small fixed set.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    // Monotonic, so a wall-clock jump cannot silence the log.
    private readonly clock: () => number = () => performance.now(),
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = this.clock();
    const window = this.windows.get(key);
    if (window !== undefined && now - window.at < this.intervalMs) {
      window.suppressed++;
      window.fields = fields;
      window.message = message;
      if (window.timer === null) {
        window.timer = setTimeout(() => this.report(key), Math.max(0, window.at + this.intervalMs - now));
        window.timer.unref();
      }
      return;
    }
    if (window !== undefined) this.report(key);
    this.windows.set(key, { at: now, suppressed: 0, fields, message, timer: null });
    this.logger.warn(fields, message);
  }

  /** Logs every pending `suppressed` count now (call it on shutdown). */
  flush(): void {
    for (const key of this.windows.keys()) this.report(key);
  }

  private report(key: string): void {
    const window = this.windows.get(key);
    if (window === undefined) return;
    if (window.timer !== null) clearTimeout(window.timer);
    window.timer = null;
    if (window.suppressed === 0) return;
    const { suppressed } = window;
    window.suppressed = 0;
    window.at = this.clock();
    this.logger.warn({ ...window.fields, suppressed }, window.message);
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
