import { InvalidArgumentError } from '../errors.js';
import { describeUnavailable, nativeBenchStatus, nativeUnsupported } from './addon.js';
import type { NormalizedBenchOptions } from './options.js';

/** The engine a run used, and why (`--json`'s `engine`). */
export interface EngineChoice {
  name: 'native' | 'js';
  /** Why this engine, and why not the other, in words. */
  reason: string;
}

/**
 * Picks the engine for a run: `native` where the addon is built and runs the workload
 * (closed loop, no TLS), else `js`. A run that asks for `native` where it cannot be
 * used is refused (an `InvalidArgumentError`, `UPCASE_ERR_INVALID_ARG`) with the reason
 * and the fix, never silently moved to the JavaScript engine.
 */
export function chooseEngine(o: Pick<NormalizedBenchOptions, 'engine' | 'rate' | 'tls'>): EngineChoice {
  if (o.engine === 'js') return { name: 'js', reason: 'engine js was asked for' };
  const unsupported = nativeUnsupported(o);
  const { unavailable } = nativeBenchStatus();
  if (o.engine === 'native') {
    if (unavailable !== null) {
      throw new InvalidArgumentError('engine', `auto or js here: the native bench engine is ${describeUnavailable(unavailable)}`, o.engine);
    }
    if (unsupported !== null) {
      throw new InvalidArgumentError('engine', `auto or js: the native bench engine does not run ${unsupported}`, o.engine);
    }
    return { name: 'native', reason: 'engine native was asked for' };
  }
  if (unsupported !== null) return { name: 'js', reason: `the native engine does not run ${unsupported}` };
  if (unavailable !== null) return { name: 'js', reason: `the native engine is ${describeUnavailable(unavailable)}` };
  // nativeFits(o) holds here: the options table gave `threads` the native engine's default.
  return { name: 'native', reason: 'the native engine is built and runs this workload' };
}
