import type { Duplex } from 'node:stream';
import { createWebSocketStream, type WebSocket } from 'ws';

/**
 * The MQTT byte stream of one WebSocket connection, as Aedes reads and writes it.
 *
 * mqtt-packet writes a packet in pieces between cork() and the next tick's uncork() (a PUBACK in
 * three: header, remaining length, packet id), and the duplex of `ws` sends every piece as a
 * WebSocket frame of its own: three frames, three syscalls and three reads at the client for a
 * four-byte acknowledgement. With a _writev, the pieces written in one tick leave as one frame.
 * MQTT over WebSocket allows that: a frame may hold several packets or parts of one, and clients
 * must not expect packets aligned on frames (MQTT 3.1.1, section 6).
 */
export function mqttWebSocketStream(ws: WebSocket): Duplex {
  const stream = createWebSocketStream(ws);
  stream._writev = function (chunks, callback) {
    const pieces = chunks.map(({ chunk, encoding }) => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, encoding)));
    // The duplex's own _write sends one frame (and waits for the socket to open if need be).
    this._write(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces), chunks[0]!.encoding, callback);
  };
  return stream;
}
