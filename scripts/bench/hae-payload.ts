/**
 * Generated Health Auto Export payloads: the shape of a real export (see the fixtures), with
 * local wall-clock dates whose UTC offset follows Central European DST (+0100 / +0200).
 * The same generator yields the JSON the daemon receives and the column arrays the database
 * ceiling writes, so both store exactly the same rows.
 */

export interface BulkSpec {
  samples: number;
  /** UTC time of the first sample of every series; series run one sample a minute from there. */
  startUtcMs: number;
}

interface Series {
  metric: string;
  /** As HAE writes it in JSON (it escapes '/'). */
  unitsJson: string;
  units: string;
  source: string;
  count: number;
  kind: 'heartRate' | 'quantity';
  qty?: (i: number) => number;
}

const WATCH = 'Anna\u2019s Apple Watch';
const PHONE = 'Anna\u2019s iPhone';
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

// Starts of the timed scenarios' payloads: far apart, so that no payload revises another's rows.
// A week before the spring DST change, so that even a quick run has both offsets.
export const BULK_START_UTC_MS = Date.UTC(2024, 2, 25);
export const LARGE_MQTT_START_UTC_MS = Date.UTC(2020, 0, 1);
export const LARGE_REST_START_UTC_MS = Date.UTC(2017, 0, 1);
export const SMALL_START_UTC_MS = Date.UTC(2026, 0, 1);
/** Between the points of one small payload (1 to 10 of them). */
const SMALL_POINT_STEP_MS = 5_000;

/** 60 % minute heart rate (Min/Avg/Max), 10 % each of four quantity metrics: a typical bulk export. */
function seriesOf(spec: BulkSpec): Series[] {
  const quantityEach = Math.floor(spec.samples / 10);
  const heartRate = spec.samples - 4 * quantityEach;
  return [
    { metric: 'heart_rate', unitsJson: 'count\\/min', units: 'count/min', source: WATCH, count: heartRate, kind: 'heartRate' },
    { metric: 'step_count', unitsJson: 'count', units: 'count', source: `${PHONE}|${WATCH}`, count: quantityEach, kind: 'quantity', qty: (i) => 1 + ((i * 37) % 140) },
    { metric: 'active_energy', unitsJson: 'kcal', units: 'kcal', source: WATCH, count: quantityEach, kind: 'quantity', qty: (i) => ((i * 13) % 500) / 100 + 0.1 },
    { metric: 'basal_energy_burned', unitsJson: 'kcal', units: 'kcal', source: WATCH, count: quantityEach, kind: 'quantity', qty: (i) => 1.1 + (i % 7) / 10 },
    { metric: 'walking_running_distance', unitsJson: 'km', units: 'km', source: PHONE, count: quantityEach, kind: 'quantity', qty: (i) => ((i * 11) % 90) / 1000 },
  ];
}

const heartRateOf = (i: number) => {
  const min = 50 + ((i * 7) % 40);
  return { min, avg: min + 4 + (i % 9) / 3, max: min + 10 + (i % 23) };
};

const dstCache = new Map<number, [number, number]>();

/** Central European Time: +0200 from the last Sunday of March to the last Sunday of October (01:00 UTC), else +0100. */
export function cetOffsetMinutes(utcMs: number): number {
  const year = new Date(utcMs).getUTCFullYear();
  let span = dstCache.get(year);
  if (!span) {
    const lastSunday = (month: number) => {
      const d = new Date(Date.UTC(year, month + 1, 0, 1));
      return d.getTime() - d.getUTCDay() * DAY_MS;
    };
    span = [lastSunday(2), lastSunday(9)];
    dstCache.set(year, span);
  }
  return utcMs >= span[0] && utcMs < span[1] ? 120 : 60;
}

const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** `yyyy-MM-dd HH:mm:ss ±hhmm` in local wall-clock time, as HAE writes dates. */
export function haeDate(utcMs: number, offsetMinutes: number): string {
  const d = new Date(utcMs + offsetMinutes * MINUTE_MS);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const off = Math.abs(offsetMinutes);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${sign}${pad(Math.floor(off / 60))}${pad(off % 60)}`;
}

const jsonString = (s: string) => JSON.stringify(s);

/** The whole export as JSON text (one metric object per series, like the app's "metrics" array). */
export function bulkPayloadJson(spec: BulkSpec): string {
  const metrics: string[] = [];
  for (const s of seriesOf(spec)) {
    const items = new Array<string>(s.count);
    const source = jsonString(s.source);
    for (let i = 0; i < s.count; i++) {
      const t = spec.startUtcMs + i * MINUTE_MS;
      const date = haeDate(t, cetOffsetMinutes(t));
      if (s.kind === 'heartRate') {
        const hr = heartRateOf(i);
        items[i] = `{"date":"${date}","Min":${hr.min},"Avg":${hr.avg},"Max":${hr.max},"source":${source}}`;
      } else {
        items[i] = `{"date":"${date}","qty":${s.qty!(i)},"source":${source}}`;
      }
    }
    metrics.push(`{"name":"${s.metric}","units":"${s.unitsJson}","data":[${items.join(',')}]}`);
  }
  return `{"data":{"metrics":[${metrics.join(',')}]}}`;
}

/** Rows as the daemon stores them, column by column; times as epoch ms, local dates as days since 1970-01-01. */
export interface HeartRateColumns {
  startMs: number[];
  offset: number[];
  localDay: number[];
  source: string[];
  min: number[];
  avg: number[];
  max: number[];
  units: string[];
}

export interface QuantityColumns {
  metric: string[];
  startMs: number[];
  offset: number[];
  localDay: number[];
  source: string[];
  metricReceived: string[];
  qty: number[];
  units: string[];
}

export function bulkColumns(spec: BulkSpec): { heartRate: HeartRateColumns; quantity: QuantityColumns } {
  const hr: HeartRateColumns = { startMs: [], offset: [], localDay: [], source: [], min: [], avg: [], max: [], units: [] };
  const q: QuantityColumns = { metric: [], startMs: [], offset: [], localDay: [], source: [], metricReceived: [], qty: [], units: [] };
  for (const s of seriesOf(spec)) {
    for (let i = 0; i < s.count; i++) {
      const t = spec.startUtcMs + i * MINUTE_MS;
      const offset = cetOffsetMinutes(t);
      const localDay = Math.floor((t + offset * MINUTE_MS) / DAY_MS);
      if (s.kind === 'heartRate') {
        const v = heartRateOf(i);
        hr.startMs.push(t);
        hr.offset.push(offset);
        hr.localDay.push(localDay);
        hr.source.push(s.source);
        hr.min.push(v.min);
        hr.avg.push(v.avg);
        hr.max.push(v.max);
        hr.units.push(s.units);
      } else {
        q.metric.push(s.metric);
        q.startMs.push(t);
        q.offset.push(offset);
        q.localDay.push(localDay);
        q.source.push(s.source);
        q.metricReceived.push(s.metric);
        q.qty.push(s.qty!(i));
        q.units.push(s.units);
      }
    }
  }
  return { heartRate: hr, quantity: q };
}

/** How many rows of each table a bulk payload makes. */
export function bulkRowCounts(spec: BulkSpec): { heartRate: number; quantity: number } {
  const series = seriesOf(spec);
  return { heartRate: series[0]!.count, quantity: series.slice(1).reduce((a, s) => a + s.count, 0) };
}

/** The UTC months (YYYY-MM-01) a bulk payload's rows fall in: the partitions it needs. */
export function bulkMonths(spec: BulkSpec): string[] {
  return monthsBetween(spec.startUtcMs, spec.startUtcMs + (Math.max(...seriesOf(spec).map((s) => s.count)) - 1) * MINUTE_MS);
}

/** The UTC months the points of smallPayload's sequence numbers 0 to `messages` - 1 fall in. */
export function smallPayloadMonths(messages: number): string[] {
  return monthsBetween(SMALL_START_UTC_MS, SMALL_START_UTC_MS + Math.max(0, messages - 1) * MINUTE_MS + 9 * SMALL_POINT_STEP_MS);
}

function monthsBetween(firstUtcMs: number, lastUtcMs: number): string[] {
  const months: string[] = [];
  const d = new Date(firstUtcMs);
  for (let y = d.getUTCFullYear(), m = d.getUTCMonth(); Date.UTC(y, m, 1) <= lastUtcMs; m++) {
    const month = new Date(Date.UTC(y, m, 1));
    months.push(`${month.getUTCFullYear()}-${pad(month.getUTCMonth() + 1)}-01`);
  }
  return months;
}

/**
 * A small export as the app sends it every few minutes: 1 to 10 heart-rate points. `tag` (a
 * run and client name) goes into the source, so that every message is distinct bytes and rows.
 */
export function smallPayload(tag: string, seq: number): Buffer {
  const n = 1 + (seq % 10);
  const source = jsonString(`${tag}\u2019s Apple Watch`);
  const items = new Array<string>(n);
  for (let k = 0; k < n; k++) {
    const t = SMALL_START_UTC_MS + seq * MINUTE_MS + k * SMALL_POINT_STEP_MS;
    const hr = heartRateOf(seq + k);
    items[k] = `{"date":"${haeDate(t, cetOffsetMinutes(t))}","Min":${hr.min},"Avg":${hr.avg},"Max":${hr.max},"source":${source}}`;
  }
  return Buffer.from(`{"data":{"metrics":[{"name":"heart_rate","units":"count\\/min","data":[${items.join(',')}]}]}}`);
}
