import { type AddonUnavailable, addonFix } from '../addons.js';
import { nativeCodecStatus } from '../codec/native.js';
import { NATIVE_MIN_BYTES } from '../codec/upcase.js';
import type { TcpTransportChoice, UdpTransportChoice } from '../options.js';
import { nativeTcpStatus, tcpCodecPath } from '../tcp/native.js';
import { nativeUdpStatus } from '../udp/native.js';

/** What serves a running server's TCP and UDP (null: that protocol is off). */
export interface TransportsInUse {
  tcp: 'native' | 'stream' | null;
  udp: 'native' | 'dgram' | null;
  /** The transports asked for: a native one missing is explained only where `auto` would have used it. */
  tcpChoice: TcpTransportChoice;
  udpChoice: UdpTransportChoice;
  /** In a cluster, `auto` UDP is node:dgram by design (node:cluster shares the socket). */
  clustered: boolean;
}

/**
 * What the workers of a cluster run: they load the same addons as this process, and
 * `auto` UDP keeps node:dgram there (src/server/server.ts).
 */
export function clusterTransports(
  transports: ReadonlyArray<'tcp' | 'udp' | 'tls'>,
  tcpChoice: TcpTransportChoice,
  udpChoice: UdpTransportChoice,
): TransportsInUse {
  const tcp = !transports.includes('tcp') ? null : tcpChoice !== 'stream' && nativeTcpStatus().binding !== null ? 'native' : 'stream';
  const udp = !transports.includes('udp') ? null : udpChoice === 'native' ? 'native' : 'dgram';
  return { tcp, udp, tcpChoice, udpChoice, clustered: true };
}

/** What each state of a missing addon is called in the line. */
const STATE: Record<AddonUnavailable['reason'], string> = {
  disabled: 'off',
  platform: 'not available',
  'not-built': 'not built',
  'load-error': 'failed to load',
  refused: 'refused the case tables',
};

/**
 * The line `upcase serve` prints after its ready line: which transports and codec run,
 * and, when a native one that would have been used is missing, why and what fixes it.
 *
 * @example `Transports: tcp native (codec avx512), udp native`
 * @example `Transports: tcp stream (codec typescript), udp dgram — native TCP, native UDP and C codec not built (no C compiler (`cc` not found)); install a C compiler (e.g. gcc) and run `npm rebuild upcase``
 */
export function transportsLine(use: TransportsInUse): string {
  const codec = nativeCodecStatus();
  const cPath = codec.binding?.codecPaths()[0];
  const parts: string[] = [];
  if (use.tcp === 'native') parts.push(`tcp native (codec ${tcpCodecPath() ?? 'C'})`);
  if (use.tcp === 'stream')
    parts.push(`tcp stream (codec typescript${cPath === undefined ? '' : ` + C ${cPath} from ${NATIVE_MIN_BYTES} B`})`);
  if (use.udp !== null) parts.push(`udp ${use.udp}`);

  const missing: Array<{ label: string; unavailable: AddonUnavailable }> = [];
  const tcp = nativeTcpStatus().unavailable;
  if (use.tcp === 'stream' && use.tcpChoice === 'auto' && tcp !== null) missing.push({ label: 'native TCP', unavailable: tcp });
  const udp = nativeUdpStatus().unavailable;
  const udpWanted = use.udpChoice === 'auto' && !use.clustered;
  if (use.udp === 'dgram' && udpWanted && udp !== null) missing.push({ label: 'native UDP', unavailable: udp });
  // The TypeScript codec hands it long UTF-8 pieces, on every transport but native TCP.
  if ((use.tcp === 'stream' || use.udp !== null) && codec.unavailable !== null)
    missing.push({ label: 'C codec', unavailable: codec.unavailable });
  const line = `Transports: ${parts.join(', ')}`;
  return missing.length === 0 ? `${line}\n` : `${line} — ${explain(missing)}\n`;
}

/** `native TCP and C codec not built (why); fix`: addons that are missing for the same reason go together. */
function explain(missing: Array<{ label: string; unavailable: AddonUnavailable }>): string {
  const groups = new Map<string, { labels: string[]; unavailable: AddonUnavailable }>();
  for (const m of missing) {
    const key = `${m.unavailable.reason}\n${m.unavailable.detail}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { labels: [m.label], unavailable: m.unavailable });
    else group.labels.push(m.label);
  }
  const causes: string[] = [];
  const fixes = new Set<string>();
  for (const { labels, unavailable } of groups.values()) {
    const who = labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(', ')} and ${labels.at(-1)}`;
    causes.push(`${who} ${STATE[unavailable.reason]} (${unavailable.detail})`);
    fixes.add(addonFix(unavailable));
  }
  return `${causes.join('; ')}; ${[...fixes].join('; ')}`;
}
