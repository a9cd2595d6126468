import type { AedesOptions, Client } from 'aedes';

type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;

export const DEFAULT_MAX_INFLIGHT_PER_CLIENT = 16;

/**
 * At most `max` publishes of one client are being stored at once; the next ones wait their turn
 * (their PUBACK with them).
 *
 * Aedes hands every packet parsed from one socket read to its handler at once, and reads the
 * socket again only when all of them have finished. A single read (one WebSocket message can be
 * as large as MQTT_MAX_PACKET_BYTES) may hold thousands of small PUBLISHes; without this window
 * each would be parsed as JSON and queued for the database at the same moment. Holding them here
 * keeps that bounded, and because Aedes does not read on until they are done, the client's socket
 * is not read either: TCP flow control then slows the client down.
 */
export function limitPublishesPerClient(
  authorizePublish: AuthorizePublish,
  max: number,
  onHeld: (client: Client) => void = () => undefined,
): AuthorizePublish {
  if (!(max >= 1)) throw new RangeError('the in-flight limit must be at least 1');
  const windows = new WeakMap<Client, { active: number; waiting: Array<() => void> }>();
  return (client, packet, done) => {
    if (client === null) return authorizePublish(client, packet, done);
    let window = windows.get(client);
    if (!window) {
      window = { active: 0, waiting: [] };
      windows.set(client, window);
    }
    const w = window;
    const start = (): void =>
      authorizePublish(client, packet, (err) => {
        // The slot passes straight to the next waiting publish, so nothing can overtake it.
        const next = w.waiting.shift();
        // Not called inline: a long queue of publishes refused synchronously would recurse.
        if (next) setImmediate(next);
        else w.active--;
        done(err);
      });
    if (w.active < max) {
      w.active++;
      return start();
    }
    onHeld(client);
    w.waiting.push(start);
  };
}
