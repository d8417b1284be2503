/**
 * Programs other than `upcase serve` for the client, ping, example and interop
 * tests: servers (the examples, the textbook's Python programs) on free
 * loopback ports, and fake UDP servers. Everything started here is stopped by
 * the returned `stop()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { ROOT } from './serve.js';

export const TEXTBOOK = `${ROOT}test/fixtures/textbook/`;

export interface Started {
  port: number;
  child: ChildProcess;
  /** Output so far. */
  stdout: () => string;
  stop: () => Promise<void>;
}

/**
 * Spawns a long-running process and resolves once `ready` matches its stdout.
 * `port` is read from the first group of `ready` if it has one.
 */
export function startProcess(command: string, args: string[], ready: RegExp, port = 0, timeoutMs = 15_000): Promise<Started> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${command} ${args.join(' ')}: not ready in ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = ready.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ port: m[1] === undefined ? port : Number(m[1]), child, stdout: () => out, stop });
      }
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} ${args.join(' ')} exited (${code}) before it was ready; stderr: ${err}`));
    });
  });
}

/**
 * A port below the ephemeral range (Linux: 32768–60999) that is free on all
 * addresses now. Programs that must be told their port (the textbook's Python
 * servers, the examples) get one of these: a port-0 socket elsewhere on this
 * shared machine (another test's server, or the source port of an outgoing
 * connection) never lands there, and neither do other tests' probes of ports
 * they have just closed.
 */
export async function pickFixedPort(transport: 'tcp' | 'udp'): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      if (transport === 'tcp') {
        const server = net.createServer();
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, host: '0.0.0.0', exclusive: true }, resolve);
        });
        await new Promise((resolve) => server.close(resolve));
      } else {
        const socket = dgram.createSocket('udp4');
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind({ port, address: '0.0.0.0', exclusive: true }, resolve);
        }).finally(() => {
          try {
            socket.close();
          } catch {
            // never bound
          }
        });
      }
      return port;
    } catch {
      // taken: try another
    }
  }
}

/**
 * Starts a program that takes its port as an argument (the textbook's Python
 * servers, the examples) on a free port; tries a few ports in case one is
 * taken between the check and the program's bind().
 */
export async function startOnFreePort(
  transport: 'tcp' | 'udp',
  command: string,
  args: (port: number) => string[],
  ready: RegExp,
): Promise<Started> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await pickFixedPort(transport);
    try {
      return await startProcess(command, args(port), ready, port);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/** A node process running an example through tsx. */
export function tsxArgs(file: string, ...args: string[]): string[] {
  return ['--import', 'tsx', `${ROOT}${file}`, ...args];
}

export interface FakeUdpServer {
  port: number;
  socket: dgram.Socket;
  /** Datagrams received so far, with their senders. */
  received: Array<{ msg: Buffer; rinfo: dgram.RemoteInfo }>;
  close: () => Promise<void>;
}

/** A raw UDP socket on 127.0.0.1 that calls `onMessage` for each datagram: a server that behaves as a test needs. */
export async function fakeUdpServer(
  onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket) => void = () => {},
): Promise<FakeUdpServer> {
  const socket = dgram.createSocket('udp4');
  const received: FakeUdpServer['received'] = [];
  socket.on('message', (msg, rinfo) => {
    received.push({ msg, rinfo });
    onMessage(msg, rinfo, socket);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    socket,
    received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** A UDP port with nothing listening (outside the ephemeral range, so nothing else lands there meanwhile). */
export function deadUdpPort(): Promise<number> {
  return pickFixedPort('udp');
}
