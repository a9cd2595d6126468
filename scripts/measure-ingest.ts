/**
 * Dev measurement of the ingest path (not the benchmark harness): one generated Health Auto Export
 * payload through a real daemon (a child process, so its peak RSS is its own), then the same rows
 * as column arrays written straight into the same tables by two connections (the "ceiling").
 *
 * Run: TEST_DATABASE_URL=postgres://… npx tsc -p tsconfig.json &&
 *   node dist/scripts/measure-ingest.js [mqtt|rest|rest-gzip] [samples=1000000] [runs=1] [ceiling=yes|no]
 *   node dist/scripts/measure-ingest.js small [messages=20000]   (RSS over many small payloads)
 *   node dist/scripts/measure-ingest.js clients [messages=10000] [clients=100]   (acknowledged vs processed per second)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import pg from 'pg';

const HR_SOURCES = ['Anna\u2019s Apple\u00a0Watch', 'Anna\u2019s Apple Watch Ultra'];
const Q_SOURCES = ['Anna\u2019s iPhone', 'Anna\u2019s iPhone|Anna\u2019s Apple\u00a0Watch', 'Anna\u2019s Apple\u00a0Watch'];
const OFFSETS = [-300, -240, 120, 60]; // minutes: New York winter/summer, Berlin summer/winter
const QUANTITY = [
  { name: 'step_count', units: 'count', share: 0.4 },
  { name: 'active_energy', units: 'kcal', share: 0.3 },
  { name: 'basal_energy_burned', units: 'kcal', share: 0.3 },
];
const BASE = Date.UTC(2025, 0, 1);

interface Columns {
  hr: { t: number[]; off: number[]; day: string[]; src: string[]; min: number[]; avg: number[]; max: number[] };
  q: { metric: string[]; t: number[]; off: number[]; day: string[]; src: string[]; qty: number[]; units: string[] };
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** HAE's `YYYY-MM-DD HH:MM:SS ±HHMM` for an instant seen with an offset; also the local date. */
function haeDate(epochMs: number, offsetMinutes: number): [string, string] {
  const d = new Date(epochMs + offsetMinutes * 60_000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const abs = Math.abs(offsetMinutes);
  return [`${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`, day];
}

/** Half heart rate (Min/Avg/Max per minute), half quantity metrics; the payload and its rows. */
function generate(samples: number): { payload: Buffer; cols: Columns } {
  const cols: Columns = {
    hr: { t: [], off: [], day: [], src: [], min: [], avg: [], max: [] },
    q: { metric: [], t: [], off: [], day: [], src: [], qty: [], units: [] },
  };
  const parts: string[] = ['{"data":{"metrics":['];
  const hrCount = Math.floor(samples / 2);
  const metrics: Array<{ name: string; units: string; count: number }> = [{ name: 'heart_rate', units: 'count/min', count: hrCount }];
  let left = samples - hrCount;
  QUANTITY.forEach((m, i) => {
    const count = i === QUANTITY.length - 1 ? left : Math.floor((samples - hrCount) * m.share);
    left -= count;
    metrics.push({ name: m.name, units: m.units, count });
  });
  metrics.forEach((m, mi) => {
    const items: string[] = [];
    for (let i = 0; i < m.count; i++) {
      const t = BASE + i * 60_000 + (mi === 0 ? 0 : 17_000);
      const off = OFFSETS[Math.floor(i / 50_000) % OFFSETS.length]!;
      const [date, day] = haeDate(t, off);
      if (m.name === 'heart_rate') {
        const src = HR_SOURCES[i % 7 === 0 ? 1 : 0]!;
        const min = 55 + (i % 30);
        const avg = min + 5 + (i % 10) / 2;
        const max = min + 20;
        items.push(`{"date":"${date}","Min":${min},"Avg":${avg},"Max":${max},"source":${JSON.stringify(src)}}`);
        cols.hr.t.push(t); cols.hr.off.push(off); cols.hr.day.push(day); cols.hr.src.push(src);
        cols.hr.min.push(min); cols.hr.avg.push(avg); cols.hr.max.push(max);
      } else {
        const src = Q_SOURCES[i % Q_SOURCES.length]!;
        const qty = Math.round((i % 500) * 1.37 * 1000) / 1000;
        items.push(`{"date":"${date}","qty":${qty},"source":${JSON.stringify(src)}}`);
        cols.q.metric.push(m.name); cols.q.t.push(t); cols.q.off.push(off); cols.q.day.push(day); cols.q.src.push(src);
        cols.q.qty.push(qty); cols.q.units.push(m.units);
      }
    }
    parts.push(`${mi ? ',' : ''}{"name":"${m.name}","units":"${m.units}","data":[${items.join(',')}]}`);
  });
  parts.push(']}}');
  return { payload: Buffer.from(parts.join('')), cols };
}

// ---- daemon child: the whole app on a fresh database; reports its addresses and a key ----
async function daemonChild(): Promise<void> {
  const { startTestApp } = await import('../test/helpers/app.js');
  // Settings for the daemon under test come from DAEMON_SETTINGS (JSON), e.g. '{"INGEST_CHUNK_ROWS":"50000"}'.
  const extra = JSON.parse(process.env.DAEMON_SETTINGS ?? '{}') as Record<string, string>;
  const t = await startTestApp({ LOG_LEVEL: process.env.DAEMON_LOG_LEVEL ?? 'warn', PG_POOL_MAX: '8', ...extra });
  const key = await t.createKey('bench');
  process.send!({ wsUrl: t.wsUrl, httpUrl: t.httpUrl, dbUrl: t.db.url, key });
  process.on('message', (m: { stop?: boolean }) => {
    if (m.stop) void t.close().then(() => process.exit(0));
  });
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Sends the payload once; resolves with the time until the PUBACK or the answer. */
async function publish(mode: string, info: { wsUrl: string; httpUrl: string; key: string }, payload: Buffer, t0: number, client: mqtt.MqttClient | null): Promise<number> {
  if (client) {
    await client.publishAsync('health/bench', payload, { qos: 1 });
    return performance.now() - t0;
  }
  const gzip = mode === 'rest-gzip';
  const body = gzip ? gzipSync(payload, { level: 1 }) : payload;
  const res = await fetch(`${info.httpUrl}/api/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${info.key}`, 'content-type': 'application/json', ...(gzip ? { 'content-encoding': 'gzip' } : {}) },
    body,
  });
  await res.text();
  if (res.status >= 300) throw new Error(`REST answered ${res.status}`);
  return performance.now() - t0;
}

/** Two connections, each taking the next chunk: INSERT … SELECT FROM unnest(epoch-ms float8 …) ON CONFLICT DO NOTHING. */
async function ceiling(dbUrl: string, cols: Columns, userId: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: dbUrl, max: 3 });
  await pool.query('TRUNCATE heart_rate_samples, quantity_samples');
  await pool.query('CHECKPOINT');
  const CHUNK = 20_000;
  const hrSql = `INSERT INTO heart_rate_samples (user_id, ingestion_id, start_time, utc_offset_minutes, local_date, source, min_bpm, avg_bpm, max_bpm, units)
    SELECT ${userId}, 1, to_timestamp(t / 1000.0), o, d, s, a, b, c, 'count/min'
    FROM unnest($1::float8[], $2::int2[], $3::date[], $4::text[], $5::float8[], $6::float8[], $7::float8[]) AS u(t, o, d, s, a, b, c)
    ON CONFLICT DO NOTHING`;
  const qSql = `INSERT INTO quantity_samples (user_id, ingestion_id, metric, start_time, utc_offset_minutes, local_date, source, metric_received, qty, units)
    SELECT ${userId}, 1, m, to_timestamp(t / 1000.0), o, d, s, m, q, un
    FROM unnest($1::text[], $2::float8[], $3::int2[], $4::date[], $5::text[], $6::float8[], $7::text[]) AS u(m, t, o, d, s, q, un)
    ON CONFLICT DO NOTHING`;
  type Job = [string, unknown[][]];
  const jobs: Job[] = [];
  const slice = (a: unknown[], s: number): unknown[] => a.slice(s, s + CHUNK);
  for (let s = 0; s < cols.hr.t.length; s += CHUNK) {
    const h = cols.hr;
    jobs.push([hrSql, [h.t, h.off, h.day, h.src, h.min, h.avg, h.max].map((a) => slice(a, s))]);
  }
  for (let s = 0; s < cols.q.t.length; s += CHUNK) {
    const q = cols.q;
    jobs.push([qSql, [q.metric, q.t, q.off, q.day, q.src, q.qty, q.units].map((a) => slice(a, s))]);
  }
  const clients = [await pool.connect(), await pool.connect()];
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < jobs.length) {
        const [sql, params] = jobs[next++]!;
        await c.query(sql, params);
      }
    }),
  );
  const ms = performance.now() - t0;
  const { rows } = await pool.query<{ n: string }>('SELECT (SELECT count(*) FROM heart_rate_samples) + (SELECT count(*) FROM quantity_samples) AS n');
  if (Number(rows[0]!.n) !== cols.hr.t.length + cols.q.t.length) throw new Error(`ceiling stored ${rows[0]!.n} rows`);
  for (const c of clients) c.release();
  await pool.end();
  return ms;
}

/** Many small payloads (distinct, ~2 KB), in bursts; RSS after each burst shows whether memory grows. */
async function smallMessages(count: number): Promise<void> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ['daemon']);
  const info = await new Promise<{ wsUrl: string; dbUrl: string; key: string }>((resolve) => child.once('message', resolve as never));
  const client = await mqtt.connectAsync(info.wsUrl, { username: 'bench', password: info.key, reconnectPeriod: 0 });
  const rss = (): number => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024);
  const burst = 1_000;
  const line: number[] = [];
  const t0 = performance.now();
  for (let sent = 0; sent < count; sent += burst) {
    await Promise.all(
      Array.from({ length: burst }, (_, k) => {
        const i = sent + k;
        const data = Array.from({ length: 20 }, (_, j) => `{"date":"${haeDate(BASE + (i * 20 + j) * 60_000, 60)[0]}","qty":${j},"source":"Anna’s iPhone"}`);
        return client.publishAsync('health/bench', `{"data":{"metrics":[{"name":"step_count","units":"count","data":[${data.join(',')}]}]}}`, { qos: 1 });
      }),
    );
    line.push(rss());
  }
  const pool = new pg.Pool({ connectionString: info.dbUrl, max: 1 });
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_ingestions WHERE status = 'processed'`);
    if (rows[0]!.n === count) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await pool.end();
  console.log(JSON.stringify({ mode: 'small', messages: count, seconds: +((performance.now() - t0) / 1000).toFixed(1), rssMbAfterEachThousand: line, rssMbAtEnd: rss() }));
  await client.endAsync();
  child.send({ stop: true });
  await new Promise((r) => child.once('exit', r));
}

/**
 * Many small payloads (1–10 samples) from many MQTT clients at once, each publishing at QoS 1 as
 * fast as its PUBACKs come back: payloads acknowledged and processed per second, and the
 * daemon's RSS, every second until everything is processed.
 */
async function manyClients(count: number, clientCount: number): Promise<void> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ['daemon']);
  const info = await new Promise<{ wsUrl: string; dbUrl: string; key: string }>((resolve) => child.once('message', resolve as never));
  const rss = (): number => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024);
  const pool = new pg.Pool({ connectionString: info.dbUrl, max: 1 });
  const processedCount = async (): Promise<number> =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM raw_ingestions WHERE status = 'processed'`)).rows[0]!.n;
  const clients = await Promise.all(
    Array.from({ length: clientCount }, () => mqtt.connectAsync(info.wsUrl, { username: 'bench', password: info.key, reconnectPeriod: 0 })),
  );
  const perClient = Math.ceil(count / clientCount);
  let acked = 0;
  let processed = 0;
  let ackedAt = 0;
  const timeline: Array<{ s: number; acked: number; processed: number; rssMb: number }> = [];
  const t0 = performance.now();
  const publishing = Promise.all(
    clients.map(async (client, c) => {
      for (let k = 0; k < perClient; k++) {
        const i = c * perClient + k;
        if (i >= count) return;
        const data = Array.from({ length: 1 + (i % 10) }, (_, j) => `{"date":"${haeDate(BASE + (i * 10 + j) * 60_000, 60)[0]}","qty":${j},"source":"Anna’s iPhone"}`);
        await client.publishAsync('health/bench', `{"data":{"metrics":[{"name":"step_count","units":"count","data":[${data.join(',')}]}]}}`, { qos: 1 });
        acked++;
      }
    }),
  ).then(() => (ackedAt = performance.now() - t0));
  while (processed < count) {
    await new Promise((r) => setTimeout(r, 1_000));
    processed = await processedCount();
    timeline.push({ s: Math.round((performance.now() - t0) / 1000), acked, processed, rssMb: rss() });
  }
  const processedAt = performance.now() - t0;
  await publishing;
  await pool.end();
  console.log(
    JSON.stringify({
      mode: 'clients',
      messages: count,
      clients: clientCount,
      ackedPerSecond: Math.round(count / (ackedAt / 1000)),
      processedPerSecond: Math.round(count / (processedAt / 1000)),
      secondsToAck: +(ackedAt / 1000).toFixed(1),
      secondsToProcess: +(processedAt / 1000).toFixed(1),
      timeline,
    }),
  );
  await Promise.all(clients.map((c) => c.endAsync()));
  child.send({ stop: true });
  await new Promise((r) => child.once('exit', r));
}

async function main(): Promise<void> {
  const [mode = 'mqtt', samplesArg = '1000000', runsArg = '1', ceilingArg = 'yes'] = process.argv.slice(2);
  if (mode === 'small') return smallMessages(Number(samplesArg));
  if (mode === 'clients') return manyClients(Number(process.argv[3] ?? 10_000), Number(process.argv[4] ?? 100));
  const samples = Number(samplesArg);
  const { payload, cols } = generate(samples);
  console.error(`payload: ${samples} samples, ${(payload.length / 1e6).toFixed(1)} MB`);
  for (let run = 0; run < Number(runsArg); run++) {
    const child: ChildProcess = fork(new URL(import.meta.url).pathname, ['daemon'], { execArgv: process.env.DAEMON_NODE_OPTIONS?.split(' ').filter(Boolean) ?? [] });
    const info = await new Promise<{ wsUrl: string; httpUrl: string; dbUrl: string; key: string }>((resolve) => child.once('message', resolve as never));
    const pool = new pg.Pool({ connectionString: info.dbUrl, max: 1 });
    await pool.query('CHECKPOINT');
    const rssBefore = peakRssMb(child.pid!);
    const cpu0 = cpuSeconds(child.pid!);
    // Connected before the clock starts, like a phone that is already online.
    const client = mode === 'mqtt' ? await mqtt.connectAsync(info.wsUrl, { username: 'bench', password: info.key, reconnectPeriod: 0 }) : null;
    const t0 = performance.now();
    // When the peak happens (ms after the send), sampled from outside the daemon.
    let peakAt = 0;
    let peakSeen = 0;
    const sampler = setInterval(() => {
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
      if (rss > peakSeen) [peakSeen, peakAt] = [rss, performance.now() - t0];
    }, 25);
    const ackMs = await publish(mode, info, payload, t0, client);
    let status = '';
    while (status !== 'processed') {
      await new Promise((r) => setTimeout(r, 20));
      const { rows } = await pool.query<{ status: string; error: string | null }>('SELECT status, error FROM raw_ingestions ORDER BY id DESC LIMIT 1');
      status = rows[0]?.status ?? '';
      if (status === 'failed') throw new Error(`payload failed: ${rows[0]!.error}`);
    }
    const totalMs = performance.now() - t0;
    clearInterval(sampler);
    await client?.endAsync();
    const daemonCpu = cpuSeconds(child.pid!) - cpu0;
    const peak = peakRssMb(child.pid!);
    const { rows } = await pool.query<{ hr: string; q: string; user_id: string }>(
      'SELECT (SELECT count(*) FROM heart_rate_samples) AS hr, (SELECT count(*) FROM quantity_samples) AS q, (SELECT user_id FROM raw_ingestions LIMIT 1) AS user_id',
    );
    const stored = Number(rows[0]!.hr) + Number(rows[0]!.q);
    if (stored !== samples) throw new Error(`stored ${stored} of ${samples} samples`);
    await pool.end();
    const result: Record<string, unknown> = {
      mode, samples, mb: +(payload.length / 1e6).toFixed(1), ackS: +(ackMs / 1000).toFixed(2), totalS: +(totalMs / 1000).toFixed(2),
      samplesPerS: Math.round(samples / (totalMs / 1000)), daemonCpuS: +daemonCpu.toFixed(1), rssBeforeMb: Math.round(rssBefore), peakRssMb: Math.round(peak), peakAtS: +(peakAt / 1000).toFixed(2),
    };
    if (ceilingArg === 'yes') {
      const ms = await ceiling(info.dbUrl, cols, rows[0]!.user_id);
      result['ceilingS'] = +(ms / 1000).toFixed(2);
      result['ceilingPerS'] = Math.round(samples / (ms / 1000));
      result['ratio'] = +((result['samplesPerS'] as number) / (result['ceilingPerS'] as number)).toFixed(2);
    }
    console.log(JSON.stringify(result));
    child.send({ stop: true });
    await new Promise((r) => child.once('exit', r));
  }
}

if (process.argv[2] === 'daemon') void daemonChild();
else main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
