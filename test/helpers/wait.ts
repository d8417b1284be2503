/**
 * The one way tests wait: every wait is bounded and fails with what it was
 * waiting for. Timed checks belong in benchmarks; a bound here only turns a
 * hang into a failure.
 */
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

export { delay };

/** `promise`, or a failure naming `what` after `ms` (the promise itself is left to settle). */
export function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` every `everyMs` until it is true; fails naming `what` (a string, or a function for the state by then) after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string | (() => string),
  ms = 10_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await delay(everyMs);
  }
}

/** Resolves once `socket` has closed, with the time it closed (performance.now ms). */
export function closedAt(socket: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed && socket.closed) resolve(performance.now());
    else socket.once('close', () => resolve(performance.now()));
  });
}

/** Waits for 'drain' on a writer, giving up after `ms` or when the socket closes; leaves no listeners behind. */
export function waitForDrain(socket: net.Socket, ms: number): Promise<'drain' | 'close' | 'timeout'> {
  return new Promise((resolve) => {
    const finish = (how: 'drain' | 'close' | 'timeout'): void => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(how);
    };
    const onDrain = (): void => finish('drain');
    const onClose = (): void => finish('close');
    const timer = setTimeout(() => finish('timeout'), ms);
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/** Waits until a TCP connection to 127.0.0.1:`port` (from `localAddress`) succeeds: a program has started listening. */
export async function untilListening(port: number, ms = 10_000, localAddress?: string): Promise<void> {
  const connects = (): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
  await until(connects, `something listening on 127.0.0.1:${port}`, ms, 50);
}
