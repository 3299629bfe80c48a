// The little SQL reading the wire front needs, outside string literals, quoted names, comments and
// dollar quotes: where statements end (a simple Query may hold several), and where $n parameters are.

interface Piece {
  kind: 'code' | 'other';
  text: string;
}

/** The SQL in pieces: code, and the quoted or commented parts nothing may be found in. */
function pieces(sql: string): Piece[] {
  // Most statements (SELECT 1, a BI tool's query) hold no quote, comment or dollar: one piece, no scan.
  if (!/['"$]|--|\/\*/.test(sql)) return sql ? [{ kind: 'code', text: sql }] : [];
  const out: Piece[] = [];
  let code = '';
  let i = 0;
  const other = (end: number) => {
    if (code) out.push({ kind: 'code', text: code });
    code = '';
    out.push({ kind: 'other', text: sql.slice(i, end) });
    i = end;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      let j = i + 1;
      for (;;) {
        const k = sql.indexOf(c, j);
        if (k < 0) {
          j = sql.length;
          break;
        }
        if (sql[k + 1] === c) {
          j = k + 2;
          continue;
        }
        j = k + 1;
        break;
      }
      other(j);
    } else if (c === '-' && next === '-') {
      const k = sql.indexOf('\n', i);
      other(k < 0 ? sql.length : k + 1);
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < sql.length && depth > 0) {
        if (sql.startsWith('/*', j)) {
          depth++;
          j += 2;
        } else if (sql.startsWith('*/', j)) {
          depth--;
          j += 2;
        } else j++;
      }
      other(j);
    } else if (c === '$' && !/[\w$]/.test(sql[i - 1] ?? ' ')) {
      const tag = /^\$([A-Za-z_][\w]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const k = sql.indexOf(tag[0], i + tag[0].length);
        other(k < 0 ? sql.length : k + tag[0].length);
      } else {
        code += c;
        i++;
      }
    } else {
      code += c;
      i++;
    }
  }
  if (code) out.push({ kind: 'code', text: code });
  return out;
}

/** The statements of a simple Query, without their semicolons; empty ones left out. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  for (const p of pieces(sql)) {
    if (p.kind === 'other') {
      current += p.text;
      continue;
    }
    const parts = p.text.split(';');
    current += parts[0];
    for (const rest of parts.slice(1)) {
      statements.push(current);
      current = rest;
    }
  }
  statements.push(current);
  return statements.filter((s) => stripComments(s).trim() !== '');
}

/** The SQL without its comments (to recognise commands by their first word). */
export function stripComments(sql: string): string {
  return pieces(sql)
    .map((p) => (p.kind === 'code' || !/^(--|\/\*)/.test(p.text) ? p.text : ' '))
    .join('');
}

/** The highest $n in the SQL (how many parameters it takes). */
export function parameterCount(sql: string): number {
  let n = 0;
  for (const p of pieces(sql)) if (p.kind === 'code') for (const m of p.text.matchAll(/(?<![\w$])\$(\d+)/g)) n = Math.max(n, Number(m[1]));
  return n;
}

/** The SQL with each $n replaced by `values[n-1]` (already a safe SQL literal). */
export function bindParameters(sql: string, values: string[]): string {
  return pieces(sql)
    .map((p) =>
      p.kind === 'code'
        ? p.text.replace(/(?<![\w$])\$(\d+)/g, (m, d: string) => {
            const v = values[Number(d) - 1];
            if (v === undefined) throw new RangeError(`there is no parameter $${d}`);
            return v;
          })
        : p.text,
    )
    .join('');
}

const TYPE = String.raw`([A-Za-z_][\w.]*(?:\s+(?:precision|varying|with(?:out)?\s+time\s+zone))?(?:\s*\[\s*\d*\s*\])?)`;
const CASTS = [
  new RegExp(String.raw`(?<![\w$])\$(\d+)\s*::\s*${TYPE}`, 'gi'),
  new RegExp(String.raw`\bCAST\s*\(\s*\$(\d+)\s+AS\s+${TYPE}`, 'gi'),
];

/**
 * The type each $n is cast to in the SQL ($1::text[], CAST($1 AS date)): a client that sends a
 * parameter without a type (OID 0) gets it from its cast, as Postgres infers it.
 */
export function parameterCasts(sql: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const p of pieces(sql)) {
    if (p.kind !== 'code') continue;
    for (const re of CASTS) for (const m of p.text.matchAll(re)) if (!out.has(Number(m[1]))) out.set(Number(m[1]), m[2]!);
  }
  return out;
}
