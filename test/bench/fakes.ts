import dgram from 'node:dgram';
import net from 'node:net';
import { upcase } from '../../src/codec/upcase.js';

/**
 * A TCP uppercase server that frames its input into `size`-byte requests and
 * corrupts every `every`-th reply (one byte changed, same length), counting them.
 */
export async function corruptingTcpServer(size: number, every: number) {
  const counts = { requests: 0, corrupted: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      const replies: Buffer[] = [];
      while (pending.length >= size) {
        const reply = upcase(pending.subarray(0, size));
        pending = pending.subarray(size);
        counts.requests++;
        if (counts.requests % every === 0) {
          reply[0] = reply[0] === 0x23 ? 0x24 : 0x23; // '#' or '$': never the right byte
          counts.corrupted++;
        }
        replies.push(reply);
      }
      if (replies.length > 0) socket.write(Buffer.concat(replies));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A UDP uppercase server that drops every `dropEvery`-th datagram and corrupts
 * the body (not the sequence number) of every `corruptEvery`-th reply it sends.
 */
export async function lossyUdpServer(dropEvery: number, corruptEvery: number) {
  const counts = { received: 0, dropped: 0, sent: 0, corrupted: 0 };
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    counts.received++;
    if (counts.received % dropEvery === 0) {
      counts.dropped++;
      return;
    }
    const reply = upcase(msg);
    counts.sent++;
    if (counts.sent % corruptEvery === 0) {
      reply[reply.length - 1] = reply[reply.length - 1] === 0x23 ? 0x24 : 0x23;
      counts.corrupted++;
    }
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.setRecvBufferSize(4 * 1024 * 1024); // the kernel caps it at net.core.rmem_max
  return {
    port: socket.address().port,
    counts,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * A TCP server that answers each connection's first `size`-byte request with the
 * first `send` bytes of its uppercase only, then either closes (`close`: a close
 * mid-reply) or says nothing more (a short reply: the client times out).
 */
export async function shortReplyTcpServer(size: number, send: number, close: boolean) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (answered || pending.length < size) return;
      answered = true;
      const part = upcase(pending.subarray(0, size)).subarray(0, send);
      if (close) socket.end(part);
      else socket.write(part);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A UDP uppercase server that also sends, after every `junkEvery`-th reply, a datagram
 * that is no reply (no sequence number), and sends every `duplicateEvery`-th reply twice.
 */
export async function noisyUdpServer(junkEvery: number, duplicateEvery: number) {
  const counts = { received: 0, junk: 0, duplicated: 0 };
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    counts.received++;
    const reply = upcase(msg);
    socket.send(reply, rinfo.port, rinfo.address);
    if (counts.received % duplicateEvery === 0) {
      counts.duplicated++;
      socket.send(reply, rinfo.port, rinfo.address);
    }
    if (counts.received % junkEvery === 0) {
      counts.junk++;
      socket.send('no sequence number here', rinfo.port, rinfo.address);
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    counts,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
