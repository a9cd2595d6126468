import { createHash } from 'node:crypto';
import type { Instant } from './types.js';

/**
 * Q18: a v1 workout has no id. It gets `v1-` + the first 32 hex characters of
 * sha256(name NUL start-epoch-ms NUL end-epoch-ms): only the fields that identify the workout,
 * so a re-send with revised values (energy, distance, heart rate) updates the same row, while
 * another workout (other name or times) gets another id. Epoch milliseconds, not the strings:
 * the same instant written with another offset or in 12-hour form is the same workout.
 */
export function v1WorkoutId(name: string, start: Instant, end: Instant): string {
  const digest = createHash('sha256').update(`${name}\u0000${start.epochMs}\u0000${end.epochMs}`).digest('hex');
  return `v1-${digest.slice(0, 32)}`;
}
