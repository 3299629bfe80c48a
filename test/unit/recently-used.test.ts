// The bounded map behind the worker's caches keyed by SQL text: the least recently used entry
// (read or written) leaves first, and what leaves is handed to onDrop to be freed.
import t from 'tap';
import { RecentlyUsed } from '../../lib/recently-used.js';

t.test('a read keeps an entry; the least recently used one leaves, and is freed', async (t) => {
  const dropped: string[] = [];
  const cache = new RecentlyUsed<string, string>(2, (v) => dropped.push(v));
  cache.set('a', 'A');
  cache.set('b', 'B');
  t.equal(cache.get('a'), 'A', 'a read: a is now the most recent');
  cache.set('c', 'C');
  t.same(dropped, ['B'], 'b, the least recently used, left and was freed');
  t.notOk(cache.has('b'));
  t.ok(cache.has('a') && cache.has('c'));
  t.equal(cache.size, 2);
});

t.test('has() is not a use, and setting a held key replaces it without dropping another', async (t) => {
  const dropped: string[] = [];
  const cache = new RecentlyUsed<string, string>(2, (v) => dropped.push(v));
  cache.set('a', 'A');
  cache.set('b', 'B');
  t.ok(cache.has('a'));
  cache.set('b', 'B2');
  t.same(dropped, [], 'nothing left');
  cache.set('c', 'C');
  t.same(dropped, ['A'], 'a was still the least recently used: has() did not count');
  t.equal(cache.get('b'), 'B2');
});
