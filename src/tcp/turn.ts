import { performance } from 'node:perf_hooks';

/**
 * Milliseconds of answering that stream connections may do, together, in one turn of the
 * event loop before the rest wait for the next turn. libuv reads up to 32 × 64 KiB from a
 * readable socket at a time and accepts one connection per turn: without a bound, 200
 * clients sending non-stop would make a turn last seconds, and every other client's reply,
 * and every accept, would wait for it (docs/protocol.md, fairness).
 */
export const TURN_BUDGET_MS = 5;

/** Chunks smaller than this are answered at once, whatever the budget (an interactive client's requests). */
export const SMALL_CHUNK = 4096;

// When this turn's first chunk was answered; -1 between turns. A check-phase callback,
// queued by the first chunk, ends the turn after the poll phase that read it.
let turnStart = -1;
const endTurn = (): void => {
  turnStart = -1;
};

/** True when this turn's budget is spent: the caller should wait for the next turn. */
export function turnSpent(): boolean {
  const now = performance.now();
  if (turnStart < 0) {
    turnStart = now;
    setImmediate(endTurn);
    return false;
  }
  return now - turnStart > TURN_BUDGET_MS;
}
