/**
 * Run by test/data-model.test.ts with TZ set to a zone: ingests every fixture and the all-types
 * payload over REST into the database named on the command line, then exits.
 */
import { allTypesPayload } from './all-types-payload.js';
import { startTestApp } from './app.js';
import { allFixtures, readFixture } from './fixtures.js';

const url = process.argv[2]!;
const t = await startTestApp({ DATABASE_URL: url }, { database: { url, name: 'tz', drop: async () => undefined } });
try {
  const key = await t.createKey('tz');
  const bodies = [...allFixtures().map((f) => readFixture(f)), Buffer.from(JSON.stringify(allTypesPayload()))];
  for (const body of bodies) {
    const res = await fetch(`${t.httpUrl}/api/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    if (res.status !== 200) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
  }
  process.stdout.write(`zone ${Intl.DateTimeFormat().resolvedOptions().timeZone}\n`);
} finally {
  await t.close();
}
