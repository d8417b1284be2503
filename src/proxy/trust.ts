/**
 * Which peers may send a PROXY header: a list of CIDR blocks, IPv4 and IPv6.
 * An IPv4 peer seen on a dual-stack socket as `::ffff:a.b.c.d` matches IPv4 blocks.
 */
import net from 'node:net';

export interface Cidr {
  /** The network address as written, e.g. `10.0.0.0` or `fd00::`. */
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * Parses `a.b.c.d/n` (n 0..32), an IPv6 `x::y/n` (n 0..128), or a bare address
 * (a /32 or /128). Returns null when `text` is none of these.
 */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) && !address.includes('%') ? 'ipv6' : null;
  if (family === null) return null;
  const max = family === 'ipv4' ? 32 : 128;
  if (slash === -1) return { address, prefix: max, family };
  const prefixText = text.slice(slash + 1);
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  return prefix > max ? null : { address, prefix, family };
}

/** `10.0.0.0/8` as written back, for logs and errors. */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** A set of CIDR blocks that answers "is this peer address in it?". */
export class TrustList {
  private readonly blocks = new net.BlockList();

  constructor(cidrs: readonly Cidr[]) {
    for (const c of cidrs) this.blocks.addSubnet(c.address, c.prefix, c.family);
  }

  /** False for undefined (a socket already gone) and for anything not an IP address. */
  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
    if (family === null) return false;
    try {
      return this.blocks.check(address, family);
    } catch {
      return false; // e.g. a zone id BlockList cannot parse
    }
  }
}
