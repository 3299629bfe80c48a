// An HTTPS server whose certificate follows its files: when cert-manager or `featherman certs`
// replaces them (a Secret volume swaps a symlink), the new pair is loaded with setSecureContext.
// A half-written pair (new certificate, old key) is skipped and retried on the next change.
import { createHash, X509Certificate } from 'node:crypto';
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface LoadedPair {
  cert: Buffer;
  key: Buffer;
  fingerprint: string;
  notAfter: string;
}

export interface TlsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Reads and checks a certificate and key (they must parse and belong together). */
export function loadPair(files: TlsFiles): LoadedPair {
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  createSecureContext({ cert, key }); // throws when the key does not match the certificate
  const x509 = new X509Certificate(cert);
  return { cert, key, fingerprint: x509.fingerprint256, notAfter: new Date(x509.validTo).toISOString() };
}

const digest = (p: { cert: Buffer; key: Buffer }) => createHash('sha256').update(p.cert).update(p.key).digest('hex');

export interface ReloadingServer {
  server: Server;
  /** Re-reads the files now; true when a new pair was installed. */
  reload(): boolean;
  close(): void;
}

export function reloadingHttpsServer(
  files: TlsFiles,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  log: TlsLogger,
  pollMs = 30_000,
): ReloadingServer {
  const first = loadPair(files);
  let current = digest(first);
  const server = createServer({ cert: first.cert, key: first.key }, handler);
  log.info({ cert: files.cert, fingerprint: first.fingerprint, notAfter: first.notAfter }, 'TLS certificate loaded');

  const reload = (): boolean => {
    let pair: LoadedPair;
    try {
      pair = loadPair(files);
    } catch (err) {
      log.warn({ cert: files.cert, reason: (err as Error).message }, 'TLS certificate not reloaded (will retry on the next change)');
      return false;
    }
    const next = digest(pair);
    if (next === current) return false;
    server.setSecureContext({ cert: pair.cert, key: pair.key });
    current = next;
    log.info({ cert: files.cert, fingerprint: pair.fingerprint, notAfter: pair.notAfter }, 'TLS certificate reloaded');
    return true;
  };

  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, 100);
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(files.cert), dirname(files.key)])) {
    try {
      watchers.push(watch(dir, { persistent: false }, soon));
    } catch (err) {
      log.warn({ dir, reason: (err as Error).message }, 'cannot watch the certificate directory; polling only');
    }
  }
  const poll = setInterval(reload, pollMs);
  poll.unref();
  return {
    server,
    reload,
    close() {
      clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
