import type { ConnectPacket } from 'aedes';

/**
 * What the broker imposes on every CONNECT before Aedes acts on it.
 *
 * Keep-alive: MQTT 3.1.1 lets a server close a connection it finds inactive, whatever keep-alive
 * the client asked for, but gives it no way to tell the client another value (MQTT 5's Server
 * Keep Alive does not exist here). So no keep-alive is refused, which would lock out a client
 * that cannot be configured (the iOS app's value is not documented); instead the server-side
 * idle timer is clamped: a client asking for 0 ("never time out") or more than the maximum is
 * treated as having asked for the maximum, one asking for less than the minimum gets the minimum.
 * Aedes closes a connection that sends nothing for 1.5 times that value.
 *
 * Sessions: every session is clean. A persistent session would keep the client's subscription
 * and queue messages for it in broker memory after it disconnects, for any client id it likes;
 * the only thing a client can receive here is its status topic, which is worth nothing later.
 * CONNACK then says "session present: 0", which MQTT clients handle.
 */

export interface KeepaliveBounds {
  minSeconds: number;
  maxSeconds: number;
}

export const DEFAULT_KEEPALIVE_BOUNDS: KeepaliveBounds = { minSeconds: 10, maxSeconds: 300 };

export function effectiveKeepalive(requestedSeconds: number | undefined, bounds: KeepaliveBounds): number {
  if (requestedSeconds === undefined || !(requestedSeconds > 0) || requestedSeconds > bounds.maxSeconds) return bounds.maxSeconds;
  return Math.max(requestedSeconds, bounds.minSeconds);
}

/** Rewrites the CONNECT in place (Aedes reads these fields after preConnect). */
export function applySessionPolicy(packet: ConnectPacket, bounds: KeepaliveBounds): { requestedKeepalive: number | undefined; keepalive: number } {
  const requestedKeepalive = packet.keepalive;
  packet.keepalive = effectiveKeepalive(requestedKeepalive, bounds);
  packet.clean = true;
  return { requestedKeepalive, keepalive: packet.keepalive };
}
