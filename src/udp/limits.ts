/**
 * The UDP size limits both ends need: the server's datagram handler and the
 * client. Kept apart from the server's handler so that the client imports no
 * server code.
 */

/** Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP). */
export const MAX_UDP_PAYLOAD_IPV4 = 65_507;
/** Largest UDP payload over IPv6 (65535 − 8). */
export const MAX_UDP_PAYLOAD_IPV6 = 65_527;

/** The largest reply that can go to a peer, as node:dgram names it. */
export function maxPayloadFor(address: string, family: string): number {
  // An IPv4 peer of a dual-stack socket shows up as ::ffff:a.b.c.d.
  return family === 'IPv4' || address.startsWith('::ffff:') ? MAX_UDP_PAYLOAD_IPV4 : MAX_UDP_PAYLOAD_IPV6;
}
