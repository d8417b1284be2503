// TCPServer from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/tcp-server.ts [port]   (default 12000)
import net from 'node:net';

const serverPort = Number(process.argv[2] ?? 12000);
const serverSocket = net.createServer((connectionSocket) => {
  connectionSocket.once('data', (sentence) => {
    const capitalizedSentence = sentence.toString().toUpperCase();
    connectionSocket.end(capitalizedSentence);
  });
});
serverSocket.listen(serverPort, () => console.log('The server is ready to receive'));
