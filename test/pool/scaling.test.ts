// Table-driven tests of the pool's scaling and lifecycle decisions (lib/pool/scaling.ts): each row
// is a policy, the observed workers, what the last sync remembered, and what must happen.
import t from 'tap';
import {
  decide,
  poolPolicy,
  type PoolPolicy,
  type RouterDemand,
  type ScalingMemory,
  type WorkerObservation,
} from '../../lib/pool/scaling.js';
import type { WorkerStats } from '../../lib/pool/stats.js';

const NOW = new Date('2026-11-24T12:00:00Z');
const ago = (seconds: number, from = NOW) => new Date(from.getTime() - seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
// The API's defaults: minSize 1, maxSize 10, target 0.8, up 2, down 1, interval 30s, idle 5m, lifetime 1h, 100 queries.
const DEFAULTS = poolPolicy({ catalogRef: { name: 'example' } });
const LONG_AGO = ago(3600);

interface WorkerOpts {
  active?: number;
  util?: number;
  served?: number;
  /** Seconds since its last query (default: never queried, idle since it started). */
  idle?: number;
  /** Seconds since the pod was created (default 10 minutes). */
  age?: number;
  state?: WorkerStats['state'];
  noStats?: boolean;
  outdated?: boolean;
}

function ready(name: string, o: WorkerOpts = {}): WorkerObservation {
  const age = o.age ?? 600;
  const active = o.active ?? 0;
  const stats: WorkerStats = {
    pod: name,
    ready: true,
    state: o.state ?? (active > 0 ? 'busy' : 'idle'),
    activeQueries: active,
    queriesServed: o.served ?? 0,
    startedAt: ago(age - 5),
    ...(o.idle !== undefined ? { lastQueryAt: ago(o.idle) } : {}),
    utilization: o.util ?? (active > 0 ? 1 : 0),
  };
  return { name, phase: 'ready', createdAt: ago(age), ...(o.outdated ? { outdated: true } : {}), ...(o.noStats ? {} : { stats }) };
}
const busy = (name: string, o: WorkerOpts = {}) => ready(name, { active: 1, ...o });
const starting = (name: string, age = 10): WorkerObservation => ({ name, phase: 'starting', createdAt: ago(age) });
const failed = (name: string): WorkerObservation => ({ name, phase: 'failed', createdAt: ago(600) });
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

interface Row {
  name: string;
  policy?: Partial<PoolPolicy>;
  workers: WorkerObservation[];
  memory?: ScalingMemory;
  /** What the routers report (the pool's demand annotations). */
  routers?: RouterDemand;
  expect: {
    desired: number;
    create: number;
    removed?: string[];
    states?: Record<string, string>;
    memory?: Partial<ScalingMemory>;
  };
}

const rows: Row[] = [
  {
    name: 'queue pressure: a pool at minSize 0 starts a worker when a query waits (target 1: one per query)',
    policy: { minSize: 0, targetUtilization: 1 },
    workers: [],
    memory: { desiredSize: 0, lastScaleTime: LONG_AGO },
    routers: { queued: 1 },
    expect: { desired: 1, create: 1, removed: [], memory: { desiredSize: 1, lastScaleTime: ago(0) } },
  },
  {
    name: 'queue pressure: no queue, no load, a pool at minSize 0 stays empty',
    policy: { minSize: 0 },
    workers: [],
    memory: { desiredSize: 0, lastScaleTime: LONG_AGO },
    expect: { desired: 0, create: 0, removed: [] },
  },
  {
    name: 'queue pressure: five waiting behind two busy workers grow the pool by scaleUpRate, no further',
    policy: { minSize: 2 },
    workers: [busy('a'), busy('b')],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    routers: { queued: 5 },
    expect: { desired: 4, create: 2, removed: [], states: { a: 'Busy', b: 'Busy' } },
  },
  {
    name: 'a query that found no worker wakes a pool at minSize 0, even with nothing waiting any more',
    policy: { minSize: 0, maxIdleSeconds: 300 },
    workers: [],
    memory: { desiredSize: 0, lastScaleTime: LONG_AGO },
    routers: { queued: 0, fallbackAt: ago(20) },
    expect: { desired: 1, create: 1, removed: [] },
  },
  {
    name: 'a fallback longer ago than maxIdleTime wakes nothing',
    policy: { minSize: 0, maxIdleSeconds: 300 },
    workers: [],
    memory: { desiredSize: 0, lastScaleTime: LONG_AGO },
    routers: { queued: 0, fallbackAt: ago(301) },
    expect: { desired: 0, create: 0, removed: [] },
  },
  {
    name: 'the woken worker stays while the fallback is recent, though idle past maxIdleTime itself',
    policy: { minSize: 0, maxIdleSeconds: 300 },
    workers: [ready('a', { idle: 400 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO, scaleDownSince: LONG_AGO, scaleDownTarget: 0 },
    routers: { fallbackAt: ago(100) },
    expect: { desired: 1, create: 0, removed: [], states: { a: 'Idle' } },
  },
  {
    name: 'and goes once the fallback is older than maxIdleTime',
    policy: { minSize: 0, maxIdleSeconds: 300 },
    workers: [ready('a', { idle: 400 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO, scaleDownSince: LONG_AGO, scaleDownTarget: 0 },
    routers: { fallbackAt: ago(400) },
    expect: { desired: 0, create: 0, removed: ['a'] },
  },
  {
    name: 'queue pressure: a queue never takes the pool past maxSize',
    policy: { minSize: 1, maxSize: 3, scaleUpRate: 10 },
    workers: [busy('a')],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO },
    routers: { queued: 50 },
    expect: { desired: 3, create: 2, removed: [] },
  },
  {
    name: 'queue pressure: a queue holds off a scale-down',
    policy: { minSize: 1 },
    workers: [ready('a', { idle: 900 }), ready('b', { idle: 900 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO, scaleDownSince: LONG_AGO, scaleDownTarget: 1 },
    routers: { queued: 1 },
    expect: { desired: 2, create: 0, removed: [] },
  },
  {
    name: 'a fresh pool starts minSize workers at once',
    policy: { minSize: 2 },
    workers: [],
    expect: { desired: 2, create: 2, removed: [], memory: { desiredSize: 2, lastScaleTime: ago(0) } },
  },
  {
    name: 'steady state: idle workers at the desired size change nothing',
    policy: { minSize: 2 },
    workers: [ready('a', { util: 0.2, idle: 20 }), ready('b', { util: 0.1, idle: 40 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 0, removed: [], states: { a: 'Idle', b: 'Idle' }, memory: { desiredSize: 2, lastScaleTime: LONG_AGO } },
  },
  {
    name: 'scale up under load: two busy workers at target 0.8 ask for three',
    policy: { minSize: 2 },
    workers: [busy('a'), busy('b')],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 3, create: 1, removed: [], states: { a: 'Busy', b: 'Busy' }, memory: { lastScaleTime: ago(0) } },
  },
  {
    name: 'utilization counts even between queries (a worker busy 90% of the last minute)',
    policy: { minSize: 1 },
    workers: [ready('a', { util: 0.9, idle: 1 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 1, removed: [] },
  },
  {
    name: 'scale-up rate limit: at most scaleUpRate more per interval',
    policy: { minSize: 1, targetUtilization: 0.5, scaleUpRate: 2 },
    workers: names('w', 6).map((n) => busy(n)),
    memory: { desiredSize: 6, lastScaleTime: LONG_AGO },
    expect: { desired: 8, create: 2, removed: [] },
  },
  {
    name: 'scale-up rate limit: nothing more within scaleInterval of the last change',
    policy: { minSize: 1, targetUtilization: 0.5 },
    workers: names('w', 6).map((n) => busy(n)),
    memory: { desiredSize: 6, lastScaleTime: ago(10) },
    expect: { desired: 6, create: 0, removed: [], memory: { lastScaleTime: ago(10) } },
  },
  {
    name: 'missing stats count as fully busy: two silent Ready workers ask for three',
    policy: { minSize: 1 },
    workers: [ready('a', { noStats: true }), ready('b', { noStats: true })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 3, create: 1, removed: [], states: { a: 'Busy', b: 'Busy' } },
  },
  {
    name: 'missing stats: silent workers are never deleted, even above maxSize',
    policy: { minSize: 0, maxSize: 1 },
    workers: [ready('a', { noStats: true }), ready('b', { noStats: true }), ready('c', { noStats: true })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO },
    expect: { desired: 1, create: 0, removed: [] },
  },
  {
    name: 'starting pods count toward the size but add no demand',
    policy: { minSize: 1 },
    workers: [busy('a'), busy('b'), starting('c'), starting('d')],
    memory: { desiredSize: 4, lastScaleTime: ago(5) },
    expect: { desired: 4, create: 0, removed: [], states: { c: 'Starting', d: 'Starting' } },
  },
  {
    name: 'stabilisation: a lower size is not acted on before the window has passed',
    policy: { minSize: 1 },
    workers: [ready('a', { idle: 30 }), ready('b', { idle: 30 }), ready('c', { idle: 30 })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO, scaleDownSince: ago(30), scaleDownTarget: 1 },
    expect: { desired: 3, create: 0, removed: [], memory: { scaleDownSince: ago(30), scaleDownTarget: 1 } },
  },
  {
    name: 'stabilisation: the first sync wanting fewer starts the window',
    policy: { minSize: 1 },
    workers: [ready('a', { idle: 30 }), ready('b', { idle: 30 }), ready('c', { idle: 30 })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO },
    expect: { desired: 3, create: 0, removed: [], memory: { scaleDownSince: ago(0), scaleDownTarget: 1 } },
  },
  {
    name: 'scale down after the window, by scaleDownRate, the longest idle first',
    policy: { minSize: 1, scaleDownRate: 1 },
    workers: [ready('a', { idle: 30 }), ready('b', { idle: 200 }), ready('c', { idle: 90 })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO, scaleDownSince: ago(61), scaleDownTarget: 1 },
    expect: {
      desired: 2,
      create: 0,
      removed: ['b'],
      states: { b: 'Terminating' },
      memory: { scaleDownSince: ago(61), scaleDownTarget: 1, lastScaleTime: ago(0) },
    },
  },
  {
    name: 'scale down only to the highest size wanted during the window',
    policy: { minSize: 1, scaleDownRate: 5 },
    workers: [ready('a', { idle: 30 }), ready('b', { idle: 200 }), ready('c', { idle: 90 }), ready('d', { idle: 10 })],
    memory: { desiredSize: 4, lastScaleTime: LONG_AGO, scaleDownSince: ago(120), scaleDownTarget: 3 },
    expect: { desired: 3, create: 0, removed: ['b'] },
  },
  {
    name: 'scale-down rate limit: nothing within scaleInterval of the last change',
    policy: { minSize: 1 },
    workers: [ready('a', { idle: 30 }), ready('b', { idle: 200 }), ready('c', { idle: 90 })],
    memory: { desiredSize: 3, lastScaleTime: ago(20), scaleDownSince: ago(120), scaleDownTarget: 1 },
    expect: { desired: 3, create: 0, removed: [] },
  },
  {
    name: 'scale down removes pods that are not Ready yet before warm ones',
    policy: { minSize: 1 },
    workers: [ready('a', { idle: 300 }), ready('b', { idle: 30 }), starting('c')],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO, scaleDownSince: ago(61), scaleDownTarget: 1 },
    expect: { desired: 2, create: 0, removed: ['c'] },
  },
  {
    name: 'idle past maxIdleTime: removed without the window, down to minSize and not below',
    policy: { minSize: 2, scaleDownRate: 5, maxIdleSeconds: 300 },
    workers: [ready('a', { idle: 400 }), ready('b', { idle: 900 }), ready('c', { idle: 600 }), ready('d', { idle: 350 })],
    memory: { desiredSize: 4, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 0, removed: ['b', 'c'], states: { a: 'Idle', d: 'Idle' } },
  },
  {
    name: 'idle past maxIdleTime: never below what the load needs',
    policy: { minSize: 1, scaleDownRate: 5 },
    workers: [busy('a'), busy('b'), ready('c', { idle: 900 })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO },
    expect: { desired: 3, create: 0, removed: [] },
  },
  {
    name: 'recycling by maxLifetime: the replacement is created first, the old pod stays',
    policy: { minSize: 2 },
    workers: [ready('old', { age: 3700, idle: 60 }), ready('b', { idle: 60 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 1, removed: [], states: { old: 'Draining', b: 'Idle' } },
  },
  {
    name: 'recycling: the old pod waits while its replacement is not Ready',
    policy: { minSize: 2 },
    workers: [ready('old', { age: 3700, idle: 60 }), ready('b', { idle: 60 }), starting('new')],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 0, removed: [], states: { old: 'Draining', new: 'Starting' } },
  },
  {
    name: 'recycling: the old pod goes once its replacement is Ready',
    policy: { minSize: 2 },
    workers: [ready('old', { age: 3700, idle: 60 }), ready('b', { idle: 60 }), ready('new', { age: 30 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 0, removed: ['old'], states: { old: 'Terminating', b: 'Idle', new: 'Idle' } },
  },
  {
    name: 'recycling by maxQueries, with surge',
    policy: { minSize: 1, maxQueries: 100 },
    workers: [ready('worn', { served: 100, idle: 5 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO },
    expect: { desired: 1, create: 1, removed: [], states: { worn: 'Draining' } },
  },
  {
    name: 'recycling: at most scaleUpRate retirements at a time, oldest first',
    policy: { minSize: 3, scaleUpRate: 1 },
    workers: [ready('a', { age: 4000 }), ready('b', { age: 5000 }), ready('c', { age: 3700 })],
    memory: { desiredSize: 3, lastScaleTime: LONG_AGO },
    expect: { desired: 3, create: 1, removed: [], states: { a: 'Idle', b: 'Draining', c: 'Idle' } },
  },
  {
    name: 'recycling: an out-of-date pod template is replaced like an old pod',
    policy: { minSize: 1 },
    workers: [ready('a', { outdated: true }), ready('fresh', { age: 20 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO },
    expect: { desired: 1, create: 0, removed: ['a'] },
  },
  {
    name: 'busy pods are never deleted, even past maxLifetime and with a Ready replacement',
    policy: { minSize: 2 },
    workers: [busy('old', { age: 7200 }), ready('b', { idle: 5 }), ready('new', { age: 30 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 0, removed: [], states: { old: 'Draining' } },
  },
  {
    name: 'busy pods are never deleted, even above a lowered maxSize',
    policy: { minSize: 0, maxSize: 1 },
    workers: [busy('a'), busy('b'), busy('c'), ready('d', { idle: 10 })],
    memory: { desiredSize: 4, lastScaleTime: ago(1) },
    expect: { desired: 1, create: 0, removed: ['d'], states: { a: 'Busy', b: 'Busy', c: 'Busy' } },
  },
  {
    name: 'clamped to maxSize however high the load',
    policy: { minSize: 1, maxSize: 4, scaleUpRate: 10 },
    workers: names('w', 4).map((n) => busy(n)),
    memory: { desiredSize: 4, lastScaleTime: LONG_AGO },
    expect: { desired: 4, create: 0, removed: [] },
  },
  {
    name: 'clamped to minSize at once, even right after a change (a raised minSize is not rate limited)',
    policy: { minSize: 3 },
    workers: [ready('a', { idle: 5 })],
    memory: { desiredSize: 1, lastScaleTime: ago(1) },
    expect: { desired: 3, create: 2, removed: [] },
  },
  {
    name: 'a failed pod is deleted and replaced at once',
    policy: { minSize: 2 },
    workers: [ready('a', { idle: 5 }), failed('b')],
    memory: { desiredSize: 2, lastScaleTime: ago(1) },
    expect: { desired: 2, create: 1, removed: ['b'], states: { b: 'Failed' } },
  },
  {
    name: 'a worker draining itself is replaced and, once not Ready, deleted',
    policy: { minSize: 2 },
    workers: [{ ...starting('d', 900), stats: { ...ready('d').stats!, state: 'draining', ready: false } }, ready('b', { idle: 5 })],
    memory: { desiredSize: 2, lastScaleTime: LONG_AGO },
    expect: { desired: 2, create: 1, removed: ['d'] },
  },
  {
    name: 'a worker that lost readiness while running a query is kept',
    policy: { minSize: 1 },
    workers: [{ ...starting('a', 900), stats: { ...busy('a').stats!, ready: false } }, ready('b', { idle: 5 })],
    memory: { desiredSize: 1, lastScaleTime: LONG_AGO, scaleDownSince: ago(600), scaleDownTarget: 1 },
    expect: { desired: 2, create: 0, removed: [], states: { a: 'Busy' } },
  },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const policy = { ...DEFAULTS, ...row.policy };
    const d = decide(policy, row.workers, row.memory ?? {}, NOW, row.routers);
    t.equal(d.desiredSize, row.expect.desired, 'desired size');
    t.equal(d.queued, row.routers?.queued ?? 0, 'the queue is part of the decision');
    t.equal(d.create, row.expect.create, 'pods to create');
    if (row.expect.removed)
      t.same(
        d.pods
          .filter((p) => !p.keep)
          .map((p) => p.name)
          .sort(),
        [...row.expect.removed].sort(),
        'pods removed',
      );
    for (const [name, state] of Object.entries(row.expect.states ?? {}))
      t.equal(d.pods.find((p) => p.name === name)?.state, state, `${name} is ${state}`);
    if (row.expect.memory) t.match(d.memory, row.expect.memory, 'what the next sync remembers');
    t.same(
      [...d.keep].sort(),
      row.workers
        .filter((w) => d.pods.find((p) => p.name === w.name)?.keep)
        .map((w) => w.name)
        .sort(),
      'keep lists the kept pods',
    );
    for (const w of row.workers) {
      const busyNow = w.stats ? w.stats.activeQueries > 0 || w.stats.state === 'busy' : w.phase === 'ready';
      if (busyNow && w.phase !== 'failed') t.ok(d.keep.includes(w.name), `busy ${w.name} is kept`);
    }
    for (const p of d.pods) t.type(p.reason, 'string');
  });
}

/** Syncs every `step` seconds; the pods appear as the decisions ask (new ones Ready at the next sync). */
function simulate(policy: PoolPolicy, load: (i: number) => number, steps: number, start: WorkerObservation[], stepSeconds = 30) {
  let workers = start;
  let memory: ScalingMemory = { desiredSize: start.length, lastScaleTime: LONG_AGO };
  const sizes: number[] = [];
  let counter = 0;
  for (let i = 0; i < steps; i++) {
    const now = new Date(NOW.getTime() + i * stepSeconds * 1000);
    const busyCount = load(i);
    const observed = workers.map((w, j) => {
      const active = j < busyCount ? 1 : 0;
      return {
        ...w,
        stats: {
          ...w.stats!,
          activeQueries: active,
          state: active ? ('busy' as const) : ('idle' as const),
          utilization: active,
          lastQueryAt: ago(active ? 0 : 30, now),
        },
      };
    });
    const d = decide(policy, observed, memory, now);
    memory = d.memory;
    const kept = observed.filter((w) => d.keep.includes(w.name));
    const added = Array.from({ length: d.create }, () => ready(`n${++counter}`, { age: 0 }));
    workers = [...kept, ...added];
    sizes.push(workers.length);
  }
  return sizes;
}

t.test('stabilisation: alternating load never flaps the size', async (t) => {
  const policy = { ...DEFAULTS, minSize: 1, maxSize: 10 };
  const sizes = simulate(
    policy,
    (i) => (i % 2 === 0 ? 4 : 0),
    12,
    names('w', 4).map((n) => ready(n)),
  );
  t.ok(
    sizes.every((s, i) => i === 0 || s >= sizes[i - 1]!),
    `the size only grows under alternating load: ${sizes.join(' ')}`,
  );
  t.equal(Math.max(...sizes), 5, 'up to ceil(4 / 0.8) = 5, no further');
});

t.test('stabilisation: steady low load scales down step by step after the window', async (t) => {
  const policy = { ...DEFAULTS, minSize: 1, maxSize: 10, scaleDownRate: 1 };
  const sizes = simulate(
    policy,
    () => 0,
    10,
    names('w', 4).map((n) => ready(n)),
  );
  t.same(sizes, [4, 4, 3, 2, 1, 1, 1, 1, 1, 1], 'waits 60 s, then one fewer per 30 s interval down to minSize');
});

t.test('spec defaults come from the schema', async (t) => {
  t.same(DEFAULTS, {
    minSize: 1,
    maxSize: 10,
    targetUtilization: 0.8,
    scaleUpRate: 2,
    scaleDownRate: 1,
    scaleIntervalSeconds: 30,
    maxIdleSeconds: 300,
    maxLifetimeSeconds: 3600,
    maxQueries: 100,
    maxQuerySeconds: 60,
  });
  t.match(poolPolicy({ catalogRef: { name: 'x' }, minSize: 3, maxSize: 5, scaleInterval: '1m', maxLifetime: '2h' }), {
    minSize: 3,
    maxSize: 5,
    scaleIntervalSeconds: 60,
    maxLifetimeSeconds: 7200,
  });
});

t.test('the same inputs give the same decision (two service replicas agree)', async (t) => {
  const workers = [busy('a'), ready('b', { idle: 400 }), starting('c'), ready('old', { age: 4000 })];
  const memory = { desiredSize: 3, lastScaleTime: LONG_AGO };
  t.same(decide(DEFAULTS, workers, memory, NOW), decide(DEFAULTS, [...workers].reverse(), memory, NOW));
});
