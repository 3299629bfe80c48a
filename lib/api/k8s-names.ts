// Kubernetes' own naming rules, for references to other objects (catalogs, Secrets) and for the
// label keys and values a pool's nodeSelector carries.

export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const SECRET_KEY_PATTERN = '^[-._a-zA-Z0-9]+$';
export const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
const DNS_SUBDOMAIN = new RegExp(DNS_SUBDOMAIN_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    return `label key ${JSON.stringify(key)}: the prefix must be a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return (
      `label key ${JSON.stringify(key)}: the name must be 1-63 letters, digits, '-', '_' or '.', ` +
      'starting and ending with a letter or digit'
    );
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63 || !LABEL_VALUE.test(value)) {
    return (
      `label value ${JSON.stringify(value)} must be at most 63 letters, digits, '-', '_' or '.', ` +
      'starting and ending with a letter or digit'
    );
  }
  return undefined;
}
