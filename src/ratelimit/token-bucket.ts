import type { RateDecision, RateRule } from './types.js';

export interface BucketState {
  tokens: number;
  updatedMs: number;
}

/**
 * Takes one token from a bucket at time nowMs. The same arithmetic runs in Redis
 * (redis-script.ts), so both backends answer alike.
 */
export function takeToken(state: BucketState | undefined, rule: RateRule, nowMs: number): { state: BucketState; decision: RateDecision } {
  const perMs = rule.perMinute / 60_000;
  const elapsed = state ? Math.max(0, nowMs - state.updatedMs) : 0;
  let tokens = state ? Math.min(rule.burst, state.tokens + elapsed * perMs) : rule.burst;
  const allowed = tokens >= 1;
  if (allowed) tokens -= 1;
  return { state: { tokens, updatedMs: nowMs }, decision: decisionFor(allowed, tokens, rule) };
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
