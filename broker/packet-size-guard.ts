import type { Duplex } from 'node:stream';

/**
 * Aedes 1.x has no packet-size limit and ws' maxPayload bounds one WebSocket message, not one
 * MQTT packet (a huge PUBLISH can arrive as many small ws messages). This guard follows the MQTT
 * fixed header (type byte + remaining-length varint) across arbitrary chunk boundaries so a
 * connection can be cut as soon as a packet *declares* a length over the limit, before the
 * body is buffered by mqtt-packet's parser.
 */

export const DEFAULT_MAX_FIRST_PACKET_BYTES = 64 * 1024;

export type PacketSizeViolation =
  | { kind: 'too_large'; declaredBytes: number; limit: number; packetType: number; firstPacket: boolean }
  | { kind: 'malformed_length'; packetType: number };

type State = 'type' | 'length' | 'body';

/** Pure state machine: feed it every byte the peer sends, in order. */
export class PacketSizeGuard {
  private state: State = 'type';
  private packetType = 0;
  private declared = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyRemaining = 0;
  private packetsSeen = 0;
  private violation: PacketSizeViolation | null = null;

  /**
   * @param maxPacketBytes largest remaining length accepted for any packet
   * @param maxFirstPacketBytes limit for the first packet (CONNECT), which arrives before the
   *   client is authenticated; keeps unauthenticated peers from making us buffer much.
   */
  constructor(
    readonly maxPacketBytes: number,
    readonly maxFirstPacketBytes: number = Math.min(maxPacketBytes, DEFAULT_MAX_FIRST_PACKET_BYTES),
  ) {
    if (!(maxPacketBytes > 0) || !(maxFirstPacketBytes > 0)) throw new RangeError('packet size limits must be positive');
  }

  /** Returns the violation (sticky: once violated, every later call returns it) or null. */
  feed(chunk: Uint8Array): PacketSizeViolation | null {
    if (this.violation) return this.violation;
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.bodyRemaining, chunk.length - i);
        i += take;
        this.bodyRemaining -= take;
        if (this.bodyRemaining === 0) this.endPacket();
      } else if (this.state === 'type') {
        this.startPacket(chunk[i++]!);
      } else {
        this.violation = this.lengthByte(chunk[i++]!);
        if (this.violation) return this.violation;
      }
    }
    return null;
  }

  private startPacket(typeByte: number): void {
    this.packetType = typeByte >> 4;
    this.declared = 0;
    this.multiplier = 1;
    this.lengthBytes = 0;
    this.state = 'length';
  }

  private lengthByte(b: number): PacketSizeViolation | null {
    this.declared += (b & 0x7f) * this.multiplier;
    this.multiplier *= 128;
    this.lengthBytes++;
    const firstPacket = this.packetsSeen === 0;
    const limit = firstPacket ? this.maxFirstPacketBytes : this.maxPacketBytes;
    // Checked on every byte: the partial sum is already a lower bound of the final length.
    if (this.declared > limit) {
      return { kind: 'too_large', declaredBytes: this.declared, limit, packetType: this.packetType, firstPacket };
    }
    const more = (b & 0x80) !== 0;
    if (more && this.lengthBytes === 4) return { kind: 'malformed_length', packetType: this.packetType };
    if (!more) {
      this.bodyRemaining = this.declared;
      if (this.bodyRemaining === 0) this.endPacket();
      else this.state = 'body';
    }
    return null;
  }

  private endPacket(): void {
    this.packetsSeen++;
    this.state = 'type';
  }
}

/**
 * Observes what Aedes reads from `stream` and destroys the stream on a violation.
 *
 * Must be attached AFTER `aedes.handle(stream)`: Aedes reads in paused mode ('readable' +
 * read()), and when a 'readable' listener exists Node emits 'data' only from inside read()
 * without switching the stream to flowing mode. So this listener sees every chunk just before
 * Aedes' parser does and leaves Aedes' backpressure untouched.
 */
export function guardStream(
  stream: Duplex,
  guard: PacketSizeGuard,
  onViolation: (violation: PacketSizeViolation) => void,
): void {
  const onData = (chunk: Buffer | string): void => {
    const violation = guard.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (!violation) return;
    stream.off('data', onData);
    onViolation(violation);
    stream.destroy();
  };
  stream.on('data', onData);
  // Once Aedes drops its own 'readable' listener (on close) this listener alone would put the
  // stream into flowing mode; detach so nothing is read on our behalf after the end.
  stream.once('close', () => stream.off('data', onData));
}
