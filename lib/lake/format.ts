// Result serialisation shared by the query command and the worker.

/** One RFC 4180 CSV line (with CRLF-free "\n" ending); nested values are written as JSON. */
export function csvLine(values: unknown[]): string {
  return values.map((v) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }).join(',') + '\n';
}
