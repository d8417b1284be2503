// UDPClient from Kurose & Ross §2.7, in TypeScript.
// Run: npx tsx examples/udp-client.ts [host] [port]   (default localhost 12000)
import dgram from 'node:dgram';
import { once } from 'node:events';
import readline from 'node:readline/promises';

const serverName = process.argv[2] ?? 'localhost';
const serverPort = Number(process.argv[3] ?? 12000);
const clientSocket = dgram.createSocket('udp4');

const keyboard = readline.createInterface({ input: process.stdin, output: process.stdout });
const message = await keyboard.question('Input lowercase sentence: ');
keyboard.close();
clientSocket.send(message, serverPort, serverName);

const [modifiedMessage] = await once(clientSocket, 'message');
console.log(modifiedMessage.toString());
clientSocket.close();
