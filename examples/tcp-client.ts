// TCPClient from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/tcp-client.ts [host] [port]   (default localhost 12000)
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline/promises';

const serverName = process.argv[2] ?? 'localhost';
const serverPort = Number(process.argv[3] ?? 12000);

const clientSocket = net.connect(serverPort, serverName);
await once(clientSocket, 'connect');

const keyboard = readline.createInterface({ input: process.stdin, output: process.stdout });
const sentence = await keyboard.question('Input lowercase sentence: ');
keyboard.close();
clientSocket.write(sentence);

const [modifiedSentence] = await once(clientSocket, 'data');
console.log('From server:', modifiedSentence.toString());
clientSocket.end();
