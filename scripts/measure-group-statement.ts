/**
 * Dev measurement (not a test, not the benchmark): the database's CPU per small payload for the
 * daemon's group statement (src/ingest/process-in-commit.ts, insert-only) against the bench's
 * store-rows receiver's statement (scripts/bench/store-rows-statement.ts), on the same payloads
 * (scenario 2's), in one quiet process. The two statements run on two connections, group by
 * group in turn, so that the host's drift and the tables' growth weigh on both alike; each
 * backend's CPU comes from the kernel (/proc/PID/schedstat), so the server must run on this
 * machine. Scenario 2 shows a difference of a few µs per message only across many runs; this
 * shows it in seconds.
 *
 * Run: TEST_DATABASE_URL=postgres://… npx tsc -p tsconfig.json &&
 *   node dist/scripts/measure-group-statement.js [payloads-per-group=40] [groups-per-round=40] [rounds=9]
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { defaultLimits } from '../src/hae/limits.js';
import { InCommitProcessor, type InCommitPayload } from '../src/ingest/process-in-commit.js';
import type { RawRow } from '../src/ingest/raw-store.js';
import { sha256Of } from '../src/ingest/payload-digest.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PartitionManager, partitionedTables } from '../src/store/partitions.js';
import { createMigratedDatabase } from '../test/helpers/database.js';
import { smallPayload, smallPayloadMonths } from './bench/hae-payload.js';
import { median } from './bench/latency.js';
import { mainThreadSchedule } from './bench/machine.js';
import { heartRatePoints, storeRowsArrays, storeRowsStatement, storeRowsTablesDdl, type StoreRowsItem } from './bench/store-rows-statement.js';

const REFERENCE_PAYLOADS = 'measure_store_rows_payloads';
const REFERENCE_HEART_RATE = 'measure_store_rows_heart_rate';

interface Arrival {
  body: Buffer;
  sha256: Buffer;
  json: unknown;
}

/** A backend's time on a CPU so far, in µs (a backend is one thread: its main thread's schedule). */
function backendCpuMicros(pid: number): number {
  const schedule = mainThreadSchedule(pid);
  if (!schedule) throw new Error(`no schedstat for backend ${pid}: the server must run on this machine, a Linux with schedstats`);
  return schedule.runSeconds * 1e6;
}

async function backendPid(db: pg.Pool | pg.Client): Promise<number> {
  const pid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  backendCpuMicros(pid); // throws now, before any measuring, when the server runs elsewhere
  return pid;
}

async function main(): Promise<void> {
  const [perGroup = 40, groupsPerRound = 40, rounds = 9] = process.argv.slice(2).map(Number);
  if (![perGroup, groupsPerRound, rounds].every((n) => Number.isInteger(n) && n > 0)) throw new Error('usage: measure-group-statement.js [payloads-per-group] [groups-per-round] [rounds]');
  const log = createLogger('silent');
  const { db, pool } = await createMigratedDatabase(2);
  const daemonPool = new pg.Pool({ connectionString: db.url, max: 1 });
  const reference = new pg.Client({ connectionString: db.url });
  try {
    const partitions = new PartitionManager(pool, log);
    // Every month the run's payloads reach has its partition, as in a daemon that has seen them before.
    const months = smallPayloadMonths(2 * rounds * groupsPerRound * perGroup);
    for (const table of partitionedTables) await partitions.ensureMonths(table, months);
    const userId = String((await pool.query<{ id: string }>(`INSERT INTO users (name) VALUES ('measure') RETURNING id`)).rows[0]!.id);
    const keyId = randomUUID();
    const inCommit = new InCommitProcessor({ pool: daemonPool, partitions, limits: defaultLimits, metrics: new Metrics(), logger: log });
    await reference.connect();
    await reference.query(storeRowsTablesDdl(REFERENCE_PAYLOADS, REFERENCE_HEART_RATE));
    const referenceStatement = { name: 'measure_store_rows_group', text: storeRowsStatement(REFERENCE_PAYLOADS, REFERENCE_HEART_RATE) };
    const daemonPid = await backendPid(daemonPool);
    const referencePid = await backendPid(reference);

    let seq = 0;
    const arrivals = (tag: string): Arrival[] =>
      Array.from({ length: perGroup }, (_, i) => {
        const body = smallPayload(`${tag}-${i}`, seq++);
        return { body, sha256: sha256Of(body), json: JSON.parse(body.toString('utf8')) as unknown };
      });
    const daemonGroup = async (group: Arrival[]): Promise<void> => {
      const payloads: InCommitPayload[] = group.map(({ body, sha256, json }, i) => {
        const row: RawRow = [userId, keyId, 'mqtt-ws', 'health/bench/small', `measure-${i}`, '127.0.0.1', body, sha256, body.length, new Date()];
        return { row, parsed: inCommit.parse(json, false)!.payload };
      });
      const outcomes = await inCommit.store(payloads);
      // A group stored the plain way would measure the fallback instead.
      if (!outcomes.every((o) => o.processed)) throw new Error('a group was not processed by its statement');
    };
    const referenceGroup = async (group: Arrival[]): Promise<void> => {
      const items: StoreRowsItem[] = group.map(({ body, sha256, json }) => ({ sha256, payload: body, points: heartRatePoints(json) }));
      await reference.query({ ...referenceStatement, values: storeRowsArrays(items) });
    };

    console.log(`${perGroup} payloads per group (scenario 2's, 1-10 heart-rate points), ${groupsPerRound} groups of each per round; round 1 warms up`);
    const daemonMicros: number[] = [];
    const referenceMicros: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const daemonGroups = Array.from({ length: groupsPerRound }, () => arrivals(`d${round}`));
      const referenceGroups = Array.from({ length: groupsPerRound }, () => arrivals(`r${round}`));
      let daemonCpu = 0;
      let referenceCpu = 0;
      for (let g = 0; g < groupsPerRound; g++) {
        let before = backendCpuMicros(daemonPid);
        await daemonGroup(daemonGroups[g]!);
        daemonCpu += backendCpuMicros(daemonPid) - before;
        before = backendCpuMicros(referencePid);
        await referenceGroup(referenceGroups[g]!);
        referenceCpu += backendCpuMicros(referencePid) - before;
      }
      const payloads = groupsPerRound * perGroup;
      const [d, r] = [daemonCpu / payloads, referenceCpu / payloads];
      console.log(`round ${round}: daemon ${d.toFixed(1)} µs per payload, store-rows ${r.toFixed(1)}, ratio ${(d / r).toFixed(2)}${round === 1 ? ' (warm-up)' : ''}`);
      if (round > 1) {
        daemonMicros.push(d);
        referenceMicros.push(r);
      }
    }
    if (daemonMicros.length > 0) {
      const ratios = daemonMicros.map((d, i) => d / referenceMicros[i]!);
      console.log(`median: daemon ${median(daemonMicros).toFixed(1)} µs per payload, store-rows ${median(referenceMicros).toFixed(1)}, ratio ${median(ratios).toFixed(2)}`);
    }
  } finally {
    await reference.end().catch(() => undefined);
    await daemonPool.end();
    await pool.end();
    await db.drop();
  }
}

await main();
