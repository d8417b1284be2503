import type { Logger } from 'pino';
import { type AddonUnavailable, addonFix } from '../addons.js';
import { InvalidArgumentError } from '../errors.js';
import type { NormalizedServerOptions } from '../options.js';
import { type LoadedNativeTcp, loadNativeTcp, nativeTcpProblem, nativeTcpStatus } from '../tcp/native.js';
import { type LoadedNativeUdp, loadNativeUdp, nativeUdpProblem, nativeUdpStatus } from '../udp/native.js';

/**
 * Which transport serves TCP and UDP: the option (`auto`, `native`, or the
 * JavaScript one), whether the addon can be used here, and whether a tracer asks
 * for every read (the native transports report none to JavaScript).
 */

/**
 * Refuses `native` next to a tracer, before anything is bound: the native
 * transports do not report each read, so with a tracer only `auto` or the
 * JavaScript transport will do.
 */
export function refuseTracedNative(options: Pick<NormalizedServerOptions, 'tcpTransport' | 'udpTransport'>): void {
  if (options.tcpTransport === 'native') throw tracedNative('tcpTransport', 'stream');
  if (options.udpTransport === 'native') throw tracedNative('udpTransport', 'dgram');
}

/**
 * The native TCP binding if `choice` and the build allow it, else null (serve
 * with streams). Throws when `native` was asked for and cannot be had; warns when
 * `auto` finds a built addon it cannot use.
 */
export function chooseNativeTcp(choice: NormalizedServerOptions['tcpTransport'], traced: boolean, logger: Logger): LoadedNativeTcp | null {
  const binding = choice === 'stream' || traced ? null : loadNativeTcp();
  const problem = nativeTcpProblem();
  if (choice === 'native' && binding === null) throw nativeMissing('TCP', nativeTcpStatus().unavailable!, 'stream');
  if (binding === null && choice === 'auto' && problem !== null) {
    logger.warn({ problem }, 'native TCP transport not used; serving TCP with streams');
  }
  return binding;
}

/**
 * The native UDP binding if `choice` and the build allow it, else null (serve with
 * node:dgram). In a cluster worker, `auto` keeps node:dgram: node:cluster shares one
 * socket between workers; an explicit `native` gives each worker its own socket with
 * SO_REUSEPORT.
 */
export function chooseNativeUdp(
  choice: NormalizedServerOptions['udpTransport'],
  traced: boolean,
  inWorker: boolean,
  logger: Logger,
): LoadedNativeUdp | null {
  const native = choice === 'dgram' || (choice === 'auto' && inWorker) || traced ? null : loadNativeUdp();
  const problem = nativeUdpProblem();
  if (choice === 'native' && native === null) throw nativeMissing('UDP', nativeUdpStatus().unavailable!, 'dgram');
  if (native === null && choice === 'auto' && problem !== null) {
    logger.warn({ problem }, 'native UDP transport not used; serving UDP with node:dgram');
  }
  return native;
}

function tracedNative(option: 'tcpTransport' | 'udpTransport', traced: string): InvalidArgumentError {
  return new InvalidArgumentError(
    option,
    `\`auto\` or \`${traced}\` with a tracer (the native transport does not report each read)`,
    'native',
  );
}

/** `tcpTransport: 'native'` (or UDP's) asked for where it cannot be had: why, and the fix. */
function nativeMissing(protocol: 'TCP' | 'UDP', unavailable: AddonUnavailable, fallback: string): InvalidArgumentError {
  const option = protocol === 'TCP' ? 'tcpTransport' : 'udpTransport';
  return new InvalidArgumentError(
    option,
    `auto or ${fallback}: the native ${protocol} transport cannot be used here (${unavailable.detail}); ${addonFix(unavailable)}`,
    'native',
  );
}
