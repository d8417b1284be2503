// TCPServer from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/tcp-server.ts [port]   (default 12000)
import net from 'node:net';

const serverPort = Number(process.argv[2] ?? 12000);
const serverSocket = net.createServer((connectionSocket) => {
  // A client may reset the connection (TCPClient.py does when it closes with bytes unread):
  // that ends this connection socket only, never the server.
  connectionSocket.on('error', () => connectionSocket.destroy());
  // One read, like recv(1024): a longer sentence arrives in several reads, and only the first is answered.
  connectionSocket.once('data', (sentence) => {
    // Bytes that are not UTF-8 become U+FFFD (�) here; Python's .decode() raises and ends the server.
    const capitalizedSentence = sentence.toString().toUpperCase();
    connectionSocket.end(capitalizedSentence);
  });
});
serverSocket.listen(serverPort, () => console.log('The server is ready to receive'));
