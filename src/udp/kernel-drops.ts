import { readFileSync } from 'node:fs';

/**
 * Datagrams the kernel dropped for UDP sockets bound to `port` (all of them: the
 * one socket of node:dgram, shared by cluster workers, or one per worker with the
 * native transport's SO_REUSEPORT), because their receive buffer was full or the
 * datagram was bad: the `drops` column of /proc/net/udp and /proc/net/udp6 (Linux).
 * Null where those files do not exist. The count lives as long as the sockets.
 */
export function udpKernelDrops(port: number): number | null {
  let found = false;
  let drops = 0;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'latin1');
    } catch {
      continue;
    }
    found = true;
    const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
      const fields = line.trim().split(/\s+/);
      if (fields.length < 13 || !fields[1]!.endsWith(hexPort)) continue;
      drops += Number(fields[12]) || 0;
    }
  }
  return found ? drops : null;
}
