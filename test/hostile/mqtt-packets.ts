import { prng } from '../helpers/mutate.js';

/**
 * Raw MQTT 3.1.1 packets, built byte by byte so that they can be wrong on purpose: mqtt.js
 * refuses to send most of what a hostile peer would.
 */

/** The remaining-length varint (1–4 bytes). */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

export function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);
}

export function mqttString(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
}

export interface ConnectFields {
  protocolName?: string;
  level?: number;
  clientId?: string;
  username?: string;
  password?: string;
  keepAliveSeconds?: number;
  /** Overrides the flags byte computed from username/password (clean session always set). */
  flags?: number;
}

export function connectPacket(f: ConnectFields = {}): Buffer {
  const username = f.username ?? 'hostile';
  const flags = f.flags ?? (0x02 | 0x80 | (f.password !== undefined ? 0x40 : 0));
  const parts = [
    mqttString(f.protocolName ?? 'MQTT'),
    Buffer.from([f.level ?? 4, flags, 0, f.keepAliveSeconds ?? 60]),
    mqttString(f.clientId ?? 'hostile'),
    mqttString(username),
  ];
  if (f.password !== undefined) parts.push(mqttString(f.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publishPacket(topic: string, payload: string | Buffer, qos: number, packetId = 1): Buffer {
  const id = qos > 0 ? Buffer.from([packetId >> 8, packetId & 0xff]) : Buffer.alloc(0);
  return packet(0x30 | (qos << 1), Buffer.concat([mqttString(topic), id, Buffer.from(payload)]));
}

export function subscribePacket(filter: string, packetId = 1): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), mqttString(filter), Buffer.from([1])]));
}

/** A header that declares `length` bytes and sends none of them. */
export function declaredOnly(firstByte: number, length: number): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(length)]);
}

export interface FuzzCase {
  name: string;
  /** Sent in order, each as its own write (or WebSocket message). */
  chunks: Buffer[];
}

/** Never valid JSON, whatever single byte of it is flipped. */
const NOT_JSON = '{{{{{{{{';

/**
 * Malformed and random packets, reproducible from `seed`. `validKey` opens real sessions for the
 * cases that need one (second CONNECT, QoS 3, truncated PUBLISH); their keep-alive is 1 s, so the
 * broker closes them soon after the garbage, and nothing they carry is valid JSON on a health
 * topic, so nothing may be stored.
 */
export function fuzzCases(seed: number, validKey: string, wrongKey: string): FuzzCase[] {
  const random = prng(seed);
  const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const session = (clientId: string): Buffer => connectPacket({ clientId, password: validKey, keepAliveSeconds: 1 });
  const cases: FuzzCase[] = [
    { name: 'HTTP instead of MQTT', chunks: [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')] },
    { name: 'remaining length with 5 continuation bytes', chunks: [Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])] },
    { name: 'remaining length that never ends', chunks: [Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80])] },
    { name: 'CONNECT declaring 200 MB', chunks: [declaredOnly(0x10, 200 * 1024 * 1024)] },
    { name: 'CONNECT with protocol name MQTX', chunks: [connectPacket({ protocolName: 'MQTX', password: validKey })] },
    { name: 'CONNECT with protocol name mqtt (lower case)', chunks: [connectPacket({ protocolName: 'mqtt', password: validKey })] },
    { name: 'CONNECT with an empty protocol name', chunks: [connectPacket({ protocolName: '', password: validKey })] },
    { name: 'CONNECT with protocol level 0', chunks: [connectPacket({ level: 0, password: validKey })] },
    { name: 'CONNECT with protocol level 5 over a 3.1.1 body', chunks: [connectPacket({ level: 5, password: validKey })] },
    { name: 'CONNECT with protocol level 255', chunks: [connectPacket({ level: 255, password: validKey })] },
    { name: 'CONNECT with the reserved flag bit set', chunks: [connectPacket({ password: validKey, flags: 0xc3 })] },
    { name: 'CONNECT with a password flag and no password', chunks: [connectPacket({ flags: 0xc2 })] },
    { name: 'PUBLISH before CONNECT', chunks: [publishPacket('health/x', '{"data":{}}', 1)] },
    { name: 'SUBSCRIBE before CONNECT', chunks: [subscribePacket('#')] },
    { name: 'PINGREQ before CONNECT', chunks: [Buffer.from([0xc0, 0x00])] },
    { name: 'reserved packet type 0', chunks: [Buffer.from([0x00, 0x00])] },
    { name: 'reserved packet type 15', chunks: [Buffer.from([0xf0, 0x00])] },
    { name: 'truncated CONNECT', chunks: [connectPacket({ password: wrongKey }).subarray(0, 12)] },
    { name: 'a second CONNECT', chunks: [session('second-connect'), session('second-connect')] },
    { name: 'PUBLISH with QoS 3', chunks: [session('qos3'), publishPacket('health/x', '{"data":{}}', 3)] },
    { name: 'truncated PUBLISH after CONNECT', chunks: [session('truncated-publish'), publishPacket('health/x', '{"data":{"metrics":[]}}', 1).subarray(0, 15)] },
    { name: 'PUBLISH declaring 268 MB after CONNECT', chunks: [session('huge-publish'), declaredOnly(0x32, 268_435_455)] },
    { name: 'PUBACK for nothing after CONNECT', chunks: [session('stray-puback'), Buffer.from([0x40, 0x02, 0x12, 0x34])] },
    { name: 'CONNECT with a wrong key, then PUBLISH', chunks: [connectPacket({ password: wrongKey }), publishPacket('health/x', '{"data":{}}', 1)] },
  ];
  for (let i = 0; i < 12; i++) {
    cases.push({ name: `random bytes #${i}`, chunks: [randomBytes(1 + Math.floor(random() * 300))] });
  }
  for (let i = 0; i < 12; i++) {
    // A real session followed by a valid PUBLISH with one byte flipped somewhere after CONNECT.
    const connect = session(`flipped-${i}`);
    const publish = publishPacket('health/fuzz', NOT_JSON, 1, 7);
    const at = Math.floor(random() * publish.length);
    publish[at] = publish[at]! ^ (1 + Math.floor(random() * 255));
    cases.push({ name: `PUBLISH with byte ${at} flipped #${i}`, chunks: [connect, publish] });
  }
  return cases;
}
