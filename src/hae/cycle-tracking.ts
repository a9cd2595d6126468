import { z } from 'zod';
import type { RecordParser } from './record-section.js';
import { dateField, optionalSource } from './schema.js';
import { checkOptionalSpan, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/**
 * `cycleTracking` (§1.5 ?, known only from a secondary summary): `{start, end, name, value,
 * isCycleStart?}`. Lenient: `value` may be text ("Medium") or a number, `source` may be absent.
 */
const cycleTrackingSchema = z.looseObject({
  name: z.string().min(1),
  start: dateField,
  end: dateField,
  value: z.union([z.string(), z.number()]).nullish(),
  isCycleStart: z.boolean().nullish(),
  source: optionalSource,
});

export const cycleTrackingParser: RecordParser<'cycleTracking'> = {
  kind: 'cycleTracking',
  what: 'cycle tracking entry',
  parseItem(item, { bounds }) {
    const parsed = cycleTrackingSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'cycle tracking entry');
    const entry = parsed.data;
    const span = checkOptionalSpan(entry.start, entry.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    return { name: entry.name, start, end, value: entry.value ?? null, isCycleStart: entry.isCycleStart ?? null, source: sourceOrEmpty(entry.source) };
  },
};
