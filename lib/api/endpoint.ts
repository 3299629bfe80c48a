// The catalog's objectStore.endpoint: a host, host:port, or an http(s) URL with no path.
// "s3.amazonaws.com", "minio.storage:9000", "http://minio.storage.svc:9000", "https://[::1]:9000".

/** Loose enough for RE2 and the CRD; endpointProblem() is the precise rule. */
export const ENDPOINT_PATTERN = '^([Hh][Tt][Tt][Pp][Ss]?://)?[A-Za-z0-9.\\-\\[\\]:]+/?$';

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const ENDPOINT = new RegExp(`^(?:(https?)://)?(${LABEL}(?:\\.${LABEL})*|\\[[0-9A-Fa-f:.]+\\])(?::([0-9]{1,5}))?/?$`, 'i');

export interface Endpoint {
  host: string; // with its port, as DuckDB's S3 ENDPOINT wants it: "minio:9000"
  useSsl: boolean;
}

export function parseEndpoint(text: unknown): Endpoint | undefined {
  if (typeof text !== 'string' || text.length > 253) return undefined;
  const m = ENDPOINT.exec(text.trim());
  if (!m) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { host: port === undefined ? m[2]! : `${m[2]}:${port}`, useSsl: (m[1] ?? 'https').toLowerCase() === 'https' };
}

export function endpointProblem(text: unknown): string | undefined {
  if (typeof text !== 'string' || text.trim() === '') return 'must be a host, host:port or http(s) URL';
  if (parseEndpoint(text)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) && !/^https?:\/\//i.test(text))
    return `${JSON.stringify(text)}: only http:// and https:// URLs are supported`;
  if (/@/.test(text)) return `${JSON.stringify(text)}: must not contain credentials; put them in credentialsSecret`;
  const port = /:([0-9]+)\/?$/.exec(text);
  if (port && (Number(port[1]) < 1 || Number(port[1]) > 65535))
    return `${JSON.stringify(text)}: port ${port[1]} is not between 1 and 65535`;
  if (/^https?:\/\/[^/]+\/./i.test(text)) return `${JSON.stringify(text)}: must not have a path; put a key prefix in objectStore.prefix`;
  return `${JSON.stringify(text)} is not a host, host:port or http(s) URL`;
}
