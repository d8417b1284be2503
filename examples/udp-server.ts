// UDPServer from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/udp-server.ts [port]   (default 12000)
import dgram from 'node:dgram';

const serverPort = Number(process.argv[2] ?? 12000);
const serverSocket = dgram.createSocket('udp4');
serverSocket.bind(serverPort, () => console.log('The server is ready to receive'));

serverSocket.on('message', (message, clientAddress) => {
  const modifiedMessage = message.toString().toUpperCase();
  serverSocket.send(modifiedMessage, clientAddress.port, clientAddress.address);
});
