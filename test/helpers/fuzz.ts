// Seeded random mutations of valid objects, for the bounded fuzz tests of the HTTP routes.

/** A mutator with its own seeded generator: the same seed gives the same sequence of mutations. */
export function mutator(seed: number, extraJunk: unknown[] = []) {
  let state = seed;
  const rand = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
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
