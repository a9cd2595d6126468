import { z } from 'zod';
import type { RecordParser } from './record-section.js';
import { dateField, optionalSource } from './schema.js';
import { checkOptionalSpan, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/**
 * `symptoms` (§1.5 ◐): `{start, end, name, severity, userEntered, source}`. A symptom is often a
 * point event: `start == end` is valid; only an end before the start is refused.
 */
const symptomSchema = z.looseObject({
  name: z.string().min(1),
  start: dateField,
  end: dateField,
  severity: z.union([z.string(), z.number()]).nullish(),
  userEntered: z.boolean().nullish(),
  source: optionalSource,
});

export const symptomParser: RecordParser<'symptoms'> = {
  kind: 'symptoms',
  what: 'symptom',
  parseItem(item, { bounds }) {
    const parsed = symptomSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'symptom');
    const entry = parsed.data;
    const span = checkOptionalSpan(entry.start, entry.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    const severity = entry.severity ?? null;
    return {
      name: entry.name,
      start,
      end,
      severity: severity === null ? null : String(severity),
      userEntered: entry.userEntered ?? null,
      source: sourceOrEmpty(entry.source),
    };
  },
};
