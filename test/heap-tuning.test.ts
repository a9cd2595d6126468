import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const heapTuning = fileURLToPath(new URL('../src/heap-tuning.js', import.meta.url));

/**
 * In a child process with V8's test intrinsics: after a million objects from one site survive (a
 * large export's rows), is the next object from that site still allocated in the young generation?
 */
async function youngAfterSurvivors(disablePretenuring: boolean): Promise<boolean> {
  const script = `
    ${disablePretenuring ? `(await import(${JSON.stringify(heapTuning)})).disableAllocationSitePretenuring();` : ''}
    function row(i) { return { time: i, source: 'watch', value: i * 2 }; }
    const kept = [];
    for (let i = 0; i < 1_000_000; i++) kept.push(row(i));
    process.stdout.write(String(%InYoungGeneration(row(-1))) + ' ' + kept.length);
  `;
  const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script]);
  const [young, kept] = stdout.trim().split(' ');
  assert.equal(kept, '1000000');
  return young === 'true';
}

describe('heap tuning', () => {
  test('by default V8 pretenures a site whose objects survived: short-lived objects from it land in the old generation', async () => {
    assert.equal(await youngAfterSurvivors(false), false);
  });

  test('with pretenuring disabled, the same site still allocates in the young generation', async () => {
    assert.equal(await youngAfterSurvivors(true), true);
  });
});
