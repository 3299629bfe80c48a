// Seeded random mutations of valid objects, for the bounded fuzz tests of the HTTP routes.

/** A mutator with its own seeded generator: the same seed gives the same sequence of mutations. */
export function mutator(seed: number, extraJunk: unknown[] = []) {
  let state = seed;
  const rand = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const junk = [null, 0, -1, 1e308, '', 'x'.repeat(300), true, [], {}, [1, 'a'], { a: { b: null } }, ...extraJunk];
  const pick = () => junk[Math.floor(rand() * junk.length)];
  /** Deletes, replaces with junk, or descends into one key per level. */
  const mutate = (value: any, depth = 0): any => {
    if (value && typeof value === 'object' && depth < 8 && rand() < 0.85) {
      const copy: any = Array.isArray(value) ? [...value] : { ...value };
      const keys = Object.keys(copy);
      const key = keys[Math.floor(rand() * keys.length)];
      if (key === undefined) return copy;
      const roll = rand();
      if (roll < 0.15) delete copy[key];
      else if (roll < 0.35) copy[key] = pick();
      else copy[key] = mutate(copy[key], depth + 1);
      return copy;
    }
    return pick();
  };
  return mutate;
}

// ---- hostile bodies for the HTTP fuzz of every route (test/server/routes-fuzz.test.ts) ----------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a hostile request is: its body bytes and headers, and a label for the failure message. */
export interface HostileBody {
  kind: string;
  body: Buffer;
  contentType?: string;
  /** Larger than any route accepts: the server may answer 413 and close before reading it all. */
  oversized?: boolean;
}

export const ODD_KEYS = [
  '__proto__',
  '\\u005f_proto__',
  '\\u005F\\u005Fproto\\u005F\\u005F',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '',
  ' ',
  '$ref',
  '..',
  '/',
  '~1',
  'a.b',
  'kind\\u0000',
  '\\ud800',
  '\\udfff\\ud800',
  '\u00e9',
  '\ud83e\udd86',
  'k'.repeat(5000),
  'spec',
  'metadata',
  'request',
];
export const HUGE_NUMBERS = [
  '1e400',
  '-1e400',
  '1e-400',
  '123456789012345678901234567890123456789',
  '-0',
  '0.' + '0'.repeat(400) + '1',
  '9'.repeat(1000),
  '1E+308',
  '4.9e-324',
  '9007199254740993',
];
export const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/merge-patch+json',
  'application/json-patch+json',
  '*/*',
  'application/',
  ';;;',
  'application/json; charset',
  undefined,
];

/** A JSON text nested `depth` levels deep, as lists or as objects. */
export function deepJson(depth: number, objects: boolean): string {
  return objects ? '{"a":'.repeat(depth) + '0' + '}'.repeat(depth) : '['.repeat(depth) + ']'.repeat(depth);
}

/**
 * Turns a valid JSON text into a hostile one, one class at a time: deep nesting somewhere inside,
 * odd or duplicate keys, huge numbers, broken or foreign encodings, truncation, padding up to and
 * past `limit` bytes. `rand` drives every choice, so a seed reproduces the run.
 */
export function hostile(text: string, limit: number, rand: () => number): HostileBody {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  // A place inside the text where a JSON value may go: right after a ':' outside strings is approximated by `": "` boundaries.
  const valueSlots = [...text.matchAll(/":\s*/g)].map((m) => m.index! + m[0].length);
  const objectStarts = [...text.matchAll(/\{/g)].map((m) => m.index! + 1);
  const replaceValueAt = (value: string) => {
    if (valueSlots.length === 0) return value;
    const at = pick(valueSlots);
    // The old value stays after the new one: usually a syntax error, sometimes not; both are fine.
    return rand() < 0.5
      ? `${text.slice(0, at)}${value},"x${Math.floor(rand() * 1e6)}":${text.slice(at)}`
      : `${text.slice(0, at)}${value}${text.slice(at).replace(/^("([^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)/, '')}`;
  };
  const addKeyAt = (key: string, value: string) => {
    if (objectStarts.length === 0) return text;
    const at = pick(objectStarts);
    return `${text.slice(0, at)}"${key}":${value},${text.slice(at)}`;
  };
  const json = (kind: string, s: string, contentType: string | undefined = 'application/json'): HostileBody => ({
    kind,
    body: Buffer.from(s, 'utf8'),
    contentType,
  });
  switch (Math.floor(rand() * 12)) {
    case 0:
    case 1: {
      const depth = pick([64, 99, 100, 101, 150, 1000, 9000, 30_000]);
      return json(`deep ${depth}`, replaceValueAt(deepJson(depth, rand() < 0.5)));
    }
    case 2: {
      const key = pick(ODD_KEYS);
      return json(
        `odd key ${key.slice(0, 20)}`,
        addKeyAt(key, pick(['{"prototype":{"polluted":true}}', '{"polluted":true}', 'null', '1', '"x"', '[]'])),
      );
    }
    case 3: {
      // Duplicate keys: the same key twice in one object, with different types.
      const m = [...text.matchAll(/"([A-Za-z]+)":/g)];
      if (m.length === 0) return json('duplicate keys', text);
      const key = pick(m)[1]!;
      return json(`duplicate ${key}`, addKeyAt(key, pick(['null', '{}', '[]', '"dup"', '1e400', 'true'])));
    }
    case 4:
      return json('huge number', replaceValueAt(pick(HUGE_NUMBERS)));
    case 5: {
      // Bytes that are not UTF-8: lone continuation bytes, overlong forms, surrogates, 0xff.
      const bad = pick([[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff, 0xfe], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x00]]);
      const at = Math.floor(rand() * (text.length + 1));
      return {
        kind: `invalid UTF-8 ${bad.join(',')}`,
        body: Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(bad), Buffer.from(text.slice(at))]),
        contentType: 'application/json',
      };
    }
    case 6: {
      const encoding = pick(['utf16le', 'latin1', 'bom', 'gzip-claimed', 'base64'] as const);
      if (encoding === 'utf16le')
        return { kind: 'UTF-16LE', body: Buffer.from(text, 'utf16le'), contentType: 'application/json; charset=utf-16' };
      if (encoding === 'latin1')
        return {
          kind: 'latin1',
          body: Buffer.from(text.replace(/"[a-z]/, '"\u00e9'), 'latin1'),
          contentType: 'application/json; charset=latin1',
        };
      if (encoding === 'bom')
        return { kind: 'BOM', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), contentType: 'application/json' };
      if (encoding === 'base64')
        return { kind: 'base64', body: Buffer.from(Buffer.from(text).toString('base64')), contentType: 'application/json' };
      return {
        kind: 'gzip bytes',
        body: Buffer.from([0x1f, 0x8b, 0x08, 0x00, ...Buffer.from(text).subarray(0, 64)]),
        contentType: 'application/json',
      };
    }
    case 7:
      return json('content type', text, pick(CONTENT_TYPES));
    case 8:
      return json('truncated', text.slice(0, Math.floor(rand() * text.length)));
    case 9: {
      // Padding to around the route's limit: just under, just over, and far over. Routes that take
      // many MiB get mostly 64 KiB bodies and rarely one at their limit, so the run does not
      // spend itself copying bytes.
      const big = limit > 2 * 1024 * 1024;
      const target = rand() > (big ? 0.01 : 0.2) ? 64 * 1024 : Math.floor(limit * pick([0.99, 1.01, 1.5]));
      const pad = Math.max(0, target - text.length - 20);
      const s = addKeyAt('padding', JSON.stringify('x'.repeat(pad)));
      return { ...json(`padded to ${s.length} bytes`, s), oversized: s.length > limit };
    }
    case 10: {
      // Many small values: wide rather than deep.
      const wide = rand() < 0.5 ? `[${'0,'.repeat(20_000)}0]` : `{${Array.from({ length: 5000 }, (_, i) => `"k${i}":${i}`).join(',')}}`;
      return json('wide', replaceValueAt(wide));
    }
    default: {
      const junk = pick([
        '',
        ' ',
        'null',
        '[]',
        '"string"',
        '42',
        'true',
        '{',
        '}',
        '{"a":}',
        'NaN',
        'Infinity',
        '{"a":1}{"b":2}',
        '\u0000',
        '\ufeff{}',
        '[' + '1,'.repeat(10) + ']',
      ]);
      return json(`junk ${JSON.stringify(junk).slice(0, 20)}`, junk);
    }
  }
}
