import { randomBytes } from 'node:crypto';

export type Channel = 'mqtt-tcp' | 'mqtt-ws' | 'rest';

/** What the publishers know about one distinct payload; compared with the database at the end. */
export interface PayloadRecord {
  marker: string;
  channel: Channel;
  /** null for REST. */
  qos: 0 | 1 | null;
  phase: string;
  /** Sample rows the payload holds (1 for small payloads). */
  points: number;
  /** Written to the socket / request sent at least once. */
  published: boolean;
  /** PUBACK received or REST 2xx. */
  acked: boolean;
  /** Published while the database was cut off. */
  duringOutage: boolean;
}

const BASE_MS = Date.UTC(2025, 3, 1);
const FILLER_BASE_MS = Date.UTC(2024, 0, 1);

/** HAE's date format, in UTC: "2025-04-01 12:00:00 +0000". */
function haeDate(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} +0000`;
}

/**
 * Hands out distinct payloads and remembers each one. A payload's marker (the `source` of its
 * first point, also its unique qty and date) identifies it in raw_ingestions and in
 * quantity_samples alike.
 */
export class Ledger {
  readonly runId = randomBytes(3).toString('hex');
  readonly records = new Map<string, PayloadRecord>();
  phase = 'start';
  outage = false;
  #seq = 0;

  get markerPrefix(): string {
    return `chaos-${this.runId}-`;
  }

  next(channel: Channel, qos: 0 | 1 | null, fillerPoints = 0): { record: PayloadRecord; body: Buffer } {
    const seq = ++this.#seq;
    const marker = `${this.markerPrefix}${seq}`;
    const points = [{ date: haeDate(BASE_MS + seq * 1000), qty: seq, source: marker }];
    // Fillers make a large payload (several MB, slow to parse and write) so that a kill can land
    // in the middle of its transfer or its processing; their own source keeps them apart.
    for (let i = 0; i < fillerPoints; i++) points.push({ date: haeDate(FILLER_BASE_MS + i * 60_000), qty: i, source: `${marker}#f` });
    const body = Buffer.from(JSON.stringify({ data: { metrics: [{ name: 'step_count', units: 'count', data: points }] } }));
    const record: PayloadRecord = { marker, channel, qos, phase: this.phase, points: points.length, published: false, acked: false, duringOutage: false };
    this.records.set(marker, record);
    return { record, body };
  }

  /** Marks a payload as sent now, noting whether the database was cut off at that moment. */
  sent(record: PayloadRecord): void {
    record.published = true;
    if (this.outage) record.duringOutage = true;
  }
}
