// The naive Node uppercase server the benchmarks compare against: what most people would write.
// TCP and UDP on one port. It decodes each chunk on its own, so a UTF-8 character split across
// two reads comes back as replacement characters (U+FFFD): that is part of the comparison.
// Usage: node bench/peers/naive.mjs PORT [HOST]
import dgram from 'node:dgram';
import net from 'node:net';

const port = Number(process.argv[2] ?? 12000);
const host = process.argv[3] ?? '127.0.0.1';

const server = net.createServer((socket) => {
  socket.on('data', (d) => socket.write(d.toString().toUpperCase()));
  socket.on('error', () => {});
});
const udp = dgram.createSocket('udp4');
udp.on('message', (msg, rinfo) => udp.send(msg.toString().toUpperCase(), rinfo.port, rinfo.address));

server.listen(port, host, () => {
  udp.bind(port, host, () => console.log(`ready ${port}`));
});
