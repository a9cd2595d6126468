import type { Client, Subscription } from 'aedes';

/** What Aedes reports about subscriptions (a narrow view of its typed events). */
export interface SubscriptionEvents {
  on(event: 'subscribe', listener: (subscriptions: Subscription[], client: Client) => void): unknown;
  on(event: 'unsubscribe', listener: (topics: string[], client: Client) => void): unknown;
  on(event: 'clientDisconnect', listener: (client: Client) => void): unknown;
}

// Aedes keeps a refused subscription in the 'subscribe' event, with the SUBACK failure code as its QoS.
const SUBACK_FAILURE = 128;

/**
 * The topics that some connection is subscribed to, so that a status message nobody can receive
 * is neither built nor published.
 *
 * It follows Aedes' own bookkeeping (aedes 1.x, lib/handlers/subscribe.js and unsubscribe.js):
 * - 'subscribe' fires once every granted subscription of a SUBSCRIBE is in place, in the same tick
 *   as its SUBACK is written: a client holding its SUBACK is always counted.
 * - 'unsubscribe' fires once the subscriptions are removed, for an UNSUBSCRIBE and, for a clean
 *   session, for all of its subscriptions when the connection closes. So a topic stops counting
 *   only after Aedes could no longer deliver to it.
 * - A persistent session (clean = false) keeps its subscriptions in Aedes' persistence when it
 *   disconnects (no 'unsubscribe' then), Aedes queues QoS 1 messages for it while it is away, and
 *   restores them at reconnect without a 'subscribe' event. The session policy makes every session
 *   clean, but should that change, a topic a persistent session subscribed to counts for good.
 *
 * Any doubt errs towards publishing: a status published for nobody costs a little CPU; one not
 * published for a subscriber is lost.
 */
export class StatusSubscribers {
  private readonly clientsByTopic = new Map<string, Set<Client>>();
  private readonly keptForPersistentSessions = new Set<string>();

  watch(events: SubscriptionEvents): void {
    events.on('subscribe', (subscriptions, client) => this.added(subscriptions, client));
    events.on('unsubscribe', (topics, client) => this.removed(topics, client));
    // Belt and braces: a clean session's subscriptions end with its connection.
    events.on('clientDisconnect', (client) => {
      if (client.clean) this.removed([...this.clientsByTopic.keys()], client);
    });
  }

  has(topic: string): boolean {
    return this.clientsByTopic.has(topic) || this.keptForPersistentSessions.has(topic);
  }

  private added(subscriptions: Subscription[], client: Client): void {
    for (const { topic, qos } of subscriptions) {
      if ((qos as number) === SUBACK_FAILURE) continue;
      if (!client.clean) this.keptForPersistentSessions.add(topic);
      // Closed while its SUBSCRIBE was being handled: its subscriptions are already gone.
      else if (!client.closed) this.clientsOf(topic).add(client);
    }
  }

  private removed(topics: string[], client: Client): void {
    for (const topic of topics) {
      const clients = this.clientsByTopic.get(topic);
      if (!clients?.delete(client)) continue;
      if (clients.size === 0) this.clientsByTopic.delete(topic);
    }
  }

  private clientsOf(topic: string): Set<Client> {
    let clients = this.clientsByTopic.get(topic);
    if (!clients) this.clientsByTopic.set(topic, (clients = new Set()));
    return clients;
  }
}
