// `featherman certs`: a CA and a serving certificate for the admission webhooks, for clusters
// without cert-manager. The CA is reused when DIR already holds one, so renewing the serving
// certificate keeps the caBundle the webhook configurations already trust.
import 'reflect-metadata'; // @peculiar/x509 needs it loaded first
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BadInputError } from '../errors.js';
import { webhooksYaml } from './crds.js';

type ProviderCrypto = Parameters<typeof x509.cryptoProvider.set>[0];
type CryptoKeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as unknown as ProviderCrypto);

export const CERTS_USAGE = `usage: featherman certs --out DIR [options]
Writes a CA and a serving certificate for the admission webhooks (no cert-manager needed):
  DIR/ca.crt, DIR/ca.key     the CA (reused on later runs, so the caBundle stays valid)
  DIR/tls.crt, DIR/tls.key   the serving certificate and key, for the featherman Pod
  DIR/caBundle               base64 of ca.crt, for clientConfig.caBundle
  DIR/webhooks.yaml          the webhook configurations with that caBundle filled in
options:
  --service NAME     the webhook Service (default featherman)
  --namespace NS     its namespace (default featherman)
  --dns NAME         an extra DNS name (repeatable), e.g. localhost
  --ip ADDRESS       an extra IP address (repeatable), e.g. 127.0.0.1
  --days N           serving certificate lifetime in days (default 365)
  --new-ca           make a new CA even if DIR has one
then:
  kubectl -n NS create secret tls featherman-webhook-tls --cert DIR/tls.crt --key DIR/tls.key
  kubectl apply -f DIR/webhooks.yaml`;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function derOf(text: string): Buffer {
  return Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  return bytes.toString('hex');
}

interface Ca {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  pem: string;
  keyPem: string;
}

async function newCa(notBefore: Date): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=featherman-webhook-ca,O=featherman',
    notBefore,
    notAfter: new Date(notBefore.getTime() + 3650 * DAY),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert, keys, pem: cert.toString('pem') + '\n', keyPem };
}

async function loadCa(dir: string): Promise<Ca> {
  const certPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  const cert = new x509.X509Certificate(certPem);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', derOf(keyPem), ALGORITHM, true, ['sign']);
  const publicKey = await cert.publicKey.export(ALGORITHM, ['verify'], webcrypto as unknown as ProviderCrypto);
  return { cert, keys: { privateKey, publicKey } as CryptoKeyPair, pem: certPem, keyPem };
}

export interface CertsResult {
  [key: string]: unknown;
  command: 'certs';
  out: string;
  files: string[];
  dnsNames: string[];
  ipAddresses: string[];
  notAfter: string;
  caReused: boolean;
  caFingerprint: string;
}

export async function certsCommand(argv: string[], _env?: NodeJS.ProcessEnv): Promise<CertsResult | void> {
  let values: {
    out?: string;
    service?: string;
    namespace?: string;
    dns?: string[];
    ip?: string[];
    days?: string;
    'new-ca'?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        out: { type: 'string' },
        service: { type: 'string' },
        namespace: { type: 'string' },
        dns: { type: 'string', multiple: true },
        ip: { type: 'string', multiple: true },
        days: { type: 'string' },
        'new-ca': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new BadInputError((err as Error).message);
  }
  if (values.help) {
    console.log(CERTS_USAGE);
    return;
  }
  if (!values.out) throw new BadInputError('--out: required, the directory to write the certificates to');
  const name = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const service = values.service ?? 'featherman';
  const namespace = values.namespace ?? 'featherman';
  if (!name.test(service) || service.length > 63) throw new BadInputError(`--service: ${JSON.stringify(service)} is not a Service name`);
  if (!name.test(namespace) || namespace.length > 63)
    throw new BadInputError(`--namespace: ${JSON.stringify(namespace)} is not a namespace name`);
  const days = values.days === undefined ? 365 : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new BadInputError('--days: must be a whole number of days between 1 and 3650');
  for (const dns of values.dns ?? []) {
    if (!/^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/.test(dns))
      throw new BadInputError(`--dns: ${JSON.stringify(dns)} is not a DNS name`);
  }
  for (const ip of values.ip ?? []) {
    if (!/^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f:]+)$/.test(ip)) throw new BadInputError(`--ip: ${JSON.stringify(ip)} is not an IP address`);
  }

  const out = values.out;
  mkdirSync(out, { recursive: true });
  const notBefore = new Date(Date.now() - 5 * 60_000); // tolerate clock skew between machines
  const reuse = !values['new-ca'] && existsSync(join(out, 'ca.crt')) && existsSync(join(out, 'ca.key'));
  const ca = reuse ? await loadCa(out) : await newCa(notBefore);

  const dnsNames = [
    ...new Set([
      service,
      `${service}.${namespace}`,
      `${service}.${namespace}.svc`,
      `${service}.${namespace}.svc.cluster.local`,
      ...(values.dns ?? []),
    ]),
  ];
  const ipAddresses = [...new Set(values.ip ?? [])];
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notAfter = new Date(Math.min(notBefore.getTime() + days * DAY, ca.cert.notAfter.getTime()));
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${service}.${namespace}.svc,O=featherman`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });

  const caBundle = Buffer.from(ca.pem).toString('base64');
  const written: Record<string, { text: string; secret?: boolean }> = {
    'ca.crt': { text: ca.pem },
    'ca.key': { text: ca.keyPem, secret: true },
    'tls.crt': { text: leaf.toString('pem') + '\n' },
    'tls.key': { text: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), secret: true },
    caBundle: { text: caBundle },
    'webhooks.yaml': { text: webhooksYaml({ service, namespace, caBundle }) },
  };
  for (const [file, { text, secret }] of Object.entries(written)) {
    const path = join(out, file);
    writeFileSync(path, text, { mode: secret ? 0o600 : 0o644 });
    chmodSync(path, secret ? 0o600 : 0o644);
  }
  return {
    command: 'certs',
    out,
    files: Object.keys(written),
    dnsNames,
    ipAddresses,
    notAfter: notAfter.toISOString(),
    caReused: reuse,
    caFingerprint: new X509Certificate(ca.pem).fingerprint256,
  };
}
