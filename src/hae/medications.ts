import { z } from 'zod';
import type { RecordParser } from './record-section.js';
import { dateField } from './schema.js';
import { checkJsonDepth, checkOptionalDate, checkOptionalSpan, Problem, problemFromZod } from './validate.js';

/**
 * `medications` (iOS 26+, §1.5 ◐, shape from secondary sources only): `{displayText, nickname?,
 * start, end?, scheduledDate?, form, status, isArchived, dosage?, codings[]}`. Strict on what a
 * row needs (displayText, start); lenient on the rest (dosage number or text).
 */
const medicationSchema = z.looseObject({
  displayText: z.string().min(1),
  nickname: z.string().nullish(),
  start: dateField,
  end: dateField,
  scheduledDate: dateField,
  form: z.string().nullish(),
  status: z.string().nullish(),
  isArchived: z.boolean().nullish(),
  dosage: z.union([z.number(), z.string()]).nullish(),
  codings: z.array(z.unknown()).nullish(),
});

export const medicationParser: RecordParser<'medications'> = {
  kind: 'medications',
  what: 'medication',
  parseItem(item, { bounds }) {
    const parsed = medicationSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'medication');
    const entry = parsed.data;
    const span = checkOptionalSpan(entry.start, entry.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    const scheduledDate = checkOptionalDate(entry.scheduledDate, 'scheduledDate', bounds);
    if (scheduledDate instanceof Problem) return scheduledDate;
    const problem = checkJsonDepth('codings', item['codings']);
    if (problem !== null) return problem;
    const codings = item['codings'];
    return {
      displayText: entry.displayText,
      nickname: entry.nickname ?? null,
      start,
      end,
      scheduledDate,
      form: entry.form ?? null,
      status: entry.status ?? null,
      isArchived: entry.isArchived ?? null,
      dosage: entry.dosage ?? null,
      // The input's own array (zod's copy of its objects would lose a `__proto__` key).
      codings: Array.isArray(codings) ? codings : null,
    };
  },
};
