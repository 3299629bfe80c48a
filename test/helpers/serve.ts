// `featherman serve` as its own process, for every test that needs the whole service: started with
// the given flags on a clean environment (PATH, a throwaway HOME, then `env`), resolved once it logs
// that it listens (with the ports it chose), every stdout and stderr line kept and offered as it comes.
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './cli.js';

/** The ports of the "featherman serve listening" line (httpsPort and pgPort only when asked for). */
export interface ServePorts {
  httpPort: number;
  hooksPort: number;
  httpsPort?: number;
  pgPort?: number;
}

export interface ServeProcess {
  child: ChildProcess;
  ports: ServePorts;
  /** http://127.0.0.1:<httpPort>: the query API, /metrics and health. */
  url: string;
  /** Every stdout and stderr line so far. */
  lines(): string[];
  /** The last lines, for failure messages. */
  output(lines?: number): string;
  /** Called with each line from now on. */
  onLine(listener: (line: string) => void): void;
  /** The first line containing `text`, logged already or when it comes; rejected if serve exits first. */
  line(text: string): Promise<string>;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** The HTTP and hooks listeners on free loopback ports. */
export const ON_LOOPBACK = ['--host', '127.0.0.1', '--port', '0', '--hooks-port', '0'];

/** HTTPS on a free port, with the tls.crt and tls.key in `certDir` (as `featherman certs --out` writes them). */
export const withTls = (certDir: string) => [
  '--tls-port',
  '0',
  '--tls-cert',
  join(certDir, 'tls.crt'),
  '--tls-key',
  join(certDir, 'tls.key'),
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `timeoutMs` only catches a hang: a loaded machine may take long to start the service. */
export function startServe(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
    env: { PATH: process.env.PATH, HOME: tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const all: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const partial = { out: '', err: '' };
  const reader = (key: 'out' | 'err') => (d: Buffer) => {
    const parts = (partial[key] + d.toString('utf8')).split('\n');
    partial[key] = parts.pop() ?? '';
    for (const line of parts) {
      all.push(line);
      for (const listener of [...listeners]) listener(line);
    }
  };
  child.stdout!.on('data', reader('out'));
  child.stderr!.on('data', reader('err'));
  const output = (lines = 20) => all.slice(-lines).join('\n');
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));

  const line = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const found = all.find((l) => l.includes(text));
      if (found) return resolve(found);
      const look = (l: string) => {
        if (!l.includes(text)) return;
        listeners.splice(listeners.indexOf(look), 1);
        resolve(l);
      };
      listeners.push(look);
      void exited.then((code) => reject(new Error(`featherman serve exited (${code}) before logging ${text}:\n${output()}`)));
    });

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) child.kill('SIGKILL');
    await exited;
  };

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`featherman serve did not listen in ${timeoutMs} ms:\n${output()}`));
    }, timeoutMs);
    line('featherman serve listening').then(
      (listening) => {
        clearTimeout(timer);
        const ports = JSON.parse(listening) as ServePorts;
        resolve({
          child,
          ports,
          url: `http://127.0.0.1:${ports.httpPort}`,
          lines: () => [...all],
          output,
          onLine: (listener) => listeners.push(listener),
          line,
          stop,
        });
      },
      (err: Error) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
