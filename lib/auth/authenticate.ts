// Who is asking: `Authorization: Bearer <token>` is either one of the static tokens
// (FEATHERMAN_API_TOKENS; `npm start`, and clusters that opt in) or, with a cluster, a token the
// API server vouches for through a TokenReview (ServiceAccount tokens, OIDC, whatever it accepts),
// checked against an audience of our own. Both give a Principal; everything after is one path.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { metrics } from '../metrics.js';

export interface Principal {
  user: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
  /** A bare static token: every table of every catalog (no RBAC check). */
  allAccess?: boolean;
}

/** One key per identity, for per-principal queues and for telling who may cancel a query. */
export const principalKey = (p: Principal) => `${p.user}\u0000${p.uid ?? ''}`;

/** The audience tokens must be issued for (`kubectl create token SA --audience featherman`). */
export const DEFAULT_AUDIENCE = 'featherman';

/** 401: no token, or one nobody vouches for. */
export class Unauthenticated extends Error {}
/** The API server could not be asked: 503, never 401 (the token may be fine). */
export class AuthUnavailable extends Error {}

interface StaticEntry {
  digest: Buffer;
  principal: Principal;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Static tokens: FEATHERMAN_API_TOKENS (comma- or newline-separated), or the file named by
 * FEATHERMAN_API_TOKENS_FILE. An entry is `token` (user `featherman:static`, all access, as
 * before) or `token=user` / `token=user;group1;group2` (that identity, authorised by RBAC like
 * any other when the service has a cluster; all access without one, where there is no RBAC).
 */
export function parseStaticTokens(text: string): { token: string; principal: Principal }[] {
  const out: { token: string; principal: Principal }[] = [];
  for (const entry of text.split(/[\s,]+/).filter((t) => t.length > 0)) {
    const eq = entry.indexOf('=');
    if (eq < 0) {
      out.push({ token: entry, principal: { user: 'featherman:static', groups: ['featherman:static-tokens'], allAccess: true } });
      continue;
    }
    const token = entry.slice(0, eq);
    // User names hold colons (system:serviceaccount:ns:name), so groups follow semicolons.
    const [user, ...groups] = entry.slice(eq + 1).split(';');
    if (!token || !user) throw new Error('FEATHERMAN_API_TOKENS: an entry is token, token=user or token=user;group1;group2');
    out.push({ token, principal: { user, groups: [...groups.filter(Boolean), 'featherman:static-tokens'] } });
  }
  return out;
}

export function loadStaticTokens(env: NodeJS.ProcessEnv): { token: string; principal: Principal }[] {
  const text = env.FEATHERMAN_API_TOKENS ?? (env.FEATHERMAN_API_TOKENS_FILE ? readFileSync(env.FEATHERMAN_API_TOKENS_FILE, 'utf8') : '');
  return parseStaticTokens(text);
}

/** Asks the API server who a token belongs to (a TokenReview); a seam so tests can count calls. */
export type TokenReviewer = (token: string, audiences: string[]) => Promise<Principal | undefined>;

export function kubernetesTokenReviewer(kc: KubeConfig): TokenReviewer {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token, audiences) => {
    let review;
    try {
      review = await api.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
      });
    } catch (err) {
      metrics.authChecks.inc({ check: 'tokenreview', result: 'error' });
      throw new AuthUnavailable(`the API server could not review the token (${(err as { code?: number }).code ?? 'unreachable'})`);
    }
    const s = review.status;
    // An authenticator that ignores audiences answers without status.audiences: refused, so a token
    // meant for some other service is never taken here.
    const ok = s?.authenticated === true && s.user?.username && (s.audiences ?? []).some((a) => audiences.includes(a));
    metrics.authChecks.inc({ check: 'tokenreview', result: ok ? 'allowed' : 'denied' });
    if (!ok) return undefined;
    return {
      user: s!.user!.username!,
      groups: s!.user!.groups ?? [],
      ...(s!.user!.uid ? { uid: s!.user!.uid } : {}),
      ...(s!.user!.extra ? { extra: s!.user!.extra } : {}),
    };
  };
}

export interface AuthenticatorOptions {
  staticTokens?: { token: string; principal: Principal }[];
  reviewer?: TokenReviewer;
  audiences?: string[];
  /** How long a review's answer is reused (default 10 s); short, so a revoked token stops soon. */
  cacheMs?: number;
  /** Most answers kept (default 10,000; the oldest go first). */
  cacheSize?: number;
}

export class Authenticator {
  private readonly statics: StaticEntry[];
  private readonly cache = new Map<string, { at: number; principal: Promise<Principal | undefined> }>();
  private readonly audiences: string[];
  private readonly cacheMs: number;
  private readonly cacheSize: number;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.statics = (opts.staticTokens ?? []).map((s) => ({ digest: digest(s.token), principal: s.principal }));
    this.audiences = opts.audiences ?? [DEFAULT_AUDIENCE];
    this.cacheMs = opts.cacheMs ?? 10_000;
    this.cacheSize = opts.cacheSize ?? 10_000;
  }

  /** Whether any way to authenticate is configured. */
  get configured(): boolean {
    return this.statics.length > 0 || this.opts.reviewer !== undefined;
  }
  /** Whether the cluster decides (TokenReview and SubjectAccessReview). */
  get kubernetes(): boolean {
    return this.opts.reviewer !== undefined;
  }

  /** The principal behind an Authorization header; Unauthenticated (401) or AuthUnavailable (503). */
  async authenticate(header: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!m) throw new Unauthenticated('a bearer token is required');
    const token = m[1]!;
    const given = digest(token);
    // Every static token is compared, in constant time, whether or not one matched.
    let found: Principal | undefined;
    for (const s of this.statics) if (timingSafeEqual(given, s.digest)) found ??= s.principal;
    if (found) return found;
    if (!this.opts.reviewer)
      throw new Unauthenticated(
        this.statics.length ? 'a valid bearer token is required' : 'no API tokens are configured (FEATHERMAN_API_TOKENS)',
      );
    // The cache is keyed by the token's digest: the token itself is never kept.
    const key = given.toString('base64');
    const now = Date.now();
    let hit = this.cache.get(key);
    if (hit && now - hit.at < this.cacheMs) metrics.authCache.inc({ check: 'tokenreview', result: 'hit' });
    else {
      metrics.authCache.inc({ check: 'tokenreview', result: 'miss' });
      if (hit) this.cache.delete(key);
      while (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      hit = { at: now, principal: this.opts.reviewer(token, this.audiences) };
      this.cache.set(key, hit);
      // An API server that could not be asked is asked again next time.
      hit.principal.catch(() => this.cache.delete(key));
    }
    const principal = await hit.principal;
    if (!principal) throw new Unauthenticated('the token is not valid for this service (expired, revoked, or issued for another audience)');
    return principal;
  }
}
