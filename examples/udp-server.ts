// UDPServer from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/udp-server.ts [port]   (default 12000)
import dgram from 'node:dgram';

const serverPort = Number(process.argv[2] ?? 12000);
const serverSocket = dgram.createSocket('udp4');
serverSocket.bind(serverPort, () => console.log('The server is ready to receive'));

// One whole datagram per message (up to 65,507 bytes), where recvfrom(2048) cuts longer ones.
serverSocket.on('message', (message, clientAddress) => {
  // A forged datagram from port 0 has nobody to answer (and send() would throw).
  if (clientAddress.port === 0) return;
  // Bytes that are not UTF-8 become U+FFFD (�) here; Python's .decode() raises and ends the server.
  const modifiedMessage = message.toString().toUpperCase();
  // A reply too big for one datagram (U+FFFD and uppercase can grow text) fails alone, in this callback.
  serverSocket.send(modifiedMessage, clientAddress.port, clientAddress.address, () => {});
});
