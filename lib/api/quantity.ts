// Kubernetes resource quantities ("10Gi", "500m", "1.5", "2e3"), as resource.Quantity parses them.
// Only what admission needs: is the text a quantity, and how big is it (as a float, exact enough
// to compare sizes and requests with limits).

/** The pattern Kubernetes publishes for quantities in its OpenAPI (RE2 and ECMAScript compatible). */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
const QUANTITY = new RegExp(QUANTITY_PATTERN);

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

export const GIBIBYTE = 2 ** 30;

/** The quantity's value (bytes for memory and storage, cores for cpu), or undefined if it is not a quantity. */
export function parseQuantity(text: unknown): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) ? text : undefined;
  if (typeof text !== 'string' || text.length === 0 || text.length > 64 || !QUANTITY.test(text)) return undefined;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$/.exec(text);
  if (!m) return undefined;
  const number = Number(m[1]);
  const suffix = m[2]!;
  let factor: number | undefined = BINARY[suffix] ?? DECIMAL[suffix];
  if (factor === undefined && /^[eE]/.test(suffix)) factor = 10 ** Number(suffix.slice(1));
  const value = number * (factor ?? NaN);
  return Number.isFinite(value) ? value : undefined;
}
