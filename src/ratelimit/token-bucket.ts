import type { RateDecision, RateRule } from './types.js';

export interface BucketState {
  tokens: number;
  updatedMs: number;
}

/** A full bucket at time nowMs. */
export function fullBucket(rule: RateRule, nowMs: number): BucketState {
  return { tokens: rule.burst, updatedMs: nowMs };
}

/**
 * Takes one token from `state` (updated in place) at time nowMs. The same arithmetic runs in
 * Redis (redis-script.ts), so both backends answer alike.
 */
export function takeToken(state: BucketState, rule: RateRule, nowMs: number): RateDecision {
  const perMs = rule.perMinute / 60_000;
  const elapsed = Math.max(0, nowMs - state.updatedMs);
  let tokens = Math.min(rule.burst, state.tokens + elapsed * perMs);
  const allowed = tokens >= 1;
  if (allowed) tokens -= 1;
  state.tokens = tokens;
  state.updatedMs = nowMs;
  return decisionFor(allowed, tokens, rule);
}

export function decisionFor(allowed: boolean, tokens: number, rule: RateRule): RateDecision {
  const perMs = rule.perMinute / 60_000;
  return {
    allowed,
    limit: rule.burst,
    remaining: Math.floor(tokens),
    retryAfterMs: allowed ? 0 : Math.ceil((1 - tokens) / perMs),
    resetMs: Math.ceil((rule.burst - tokens) / perMs),
  };
}

/** True once the bucket has refilled completely: forgetting it then changes nothing. */
export function isFull(state: BucketState, rule: RateRule, nowMs: number): boolean {
  return state.tokens + (nowMs - state.updatedMs) * (rule.perMinute / 60_000) >= rule.burst;
}
