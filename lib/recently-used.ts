// A map bounded by count that drops its least recently used entry first: the worker's caches keyed
// by SQL text (the sandbox's verdicts, prepared statements, texts pointed at in-memory copies).

export class RecentlyUsed<K, V> {
  private readonly entries = new Map<K, V>();

  /** `onDrop` is given each value pushed out by a newer one (to free what it holds). */
  constructor(
    private readonly max: number,
    private readonly onDrop?: (value: V) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Whether `key` is held, without counting as a use. */
  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    // Moved to the back of the Map's order: the most recently used leaves last.
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    if (!this.entries.delete(key) && this.entries.size >= this.max) {
      const [oldest, dropped] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      this.onDrop?.(dropped);
    }
    this.entries.set(key, value);
  }
}
