import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from 'aedes';
import type { Logger } from '../src/log.js';
import type { Identity, PublishDecision, PublishRateLimiter, PublishThrottleOptions } from './types.js';

interface ClientState {
  waiting: number;
  /** When the current unbroken stretch of held-back publishes began. */
  throttledSince: number;
  /** Set once the client is being disconnected: its other held publishes give up quietly. */
  cut: boolean;
}

/**
 * Slows an MQTT publisher that is over its key's rate limit: its publish waits (the PUBACK is
 * withheld, and Aedes reads no further packets from the connection meanwhile) until the budget
 * has room again. A client that stays over it (held back longer than maxWaitMs without a break,
 * or more than maxWaiting publishes held at once) is disconnected; unacknowledged QoS 1
 * publishes are re-sent after it reconnects, so nothing is lost.
 */
export class PublishThrottle {
  readonly #limiter: PublishRateLimiter;
  readonly #options: PublishThrottleOptions;
  readonly #logger: Logger;
  readonly #isDraining: () => boolean;
  readonly #clients = new WeakMap<Client, ClientState>();

  constructor(limiter: PublishRateLimiter, options: PublishThrottleOptions, logger: Logger, isDraining: () => boolean) {
    this.#limiter = limiter;
    this.#options = options;
    this.#logger = logger;
    this.#isDraining = isDraining;
  }

  /**
   * Undefined when the publish may be stored at once (the usual case, answered without a promise);
   * else a promise that resolves when it may, or rejects (Aedes then drops the client) when it stayed over.
   */
  admit(client: Client, identity: Identity): Promise<void> | undefined {
    const decision = this.#limiter.take(identity.keyId);
    if (decision instanceof Promise) return decision.then((d) => (d.allowed ? undefined : this.#hold(client, identity, d)));
    return decision.allowed ? undefined : this.#hold(client, identity, decision);
  }

  async #hold(client: Client, identity: Identity, first: PublishDecision): Promise<void> {
    let decision = first;
    const state = this.#clients.get(client) ?? { waiting: 0, throttledSince: Date.now(), cut: false };
    if (state.waiting === 0) state.throttledSince = Date.now();
    this.#clients.set(client, state);
    state.waiting++;
    this.#limiter.report('delayed');
    try {
      while (!decision.allowed) {
        if (state.cut) throw new Error('publish rate limit exceeded');
        const waitedMs = Date.now() - state.throttledSince;
        if (state.waiting > this.#options.maxWaiting || waitedMs + decision.retryAfterMs > this.#options.maxWaitMs) {
          state.cut = true;
          this.#limiter.report('disconnected');
          this.#logger.warn(
            { clientId: client.id, user: identity.userName, keyId: identity.keyId, waiting: state.waiting, waitedMs },
            'mqtt: client stays over its rate limit; disconnecting it (unacknowledged publishes are re-sent)',
          );
          throw new Error('publish rate limit exceeded');
        }
        await delay(decision.retryAfterMs);
        if (this.#isDraining()) throw new Error('server is shutting down');
        if (state.cut) throw new Error('publish rate limit exceeded');
        decision = await this.#limiter.take(identity.keyId);
      }
    } finally {
      state.waiting--;
    }
  }
}
