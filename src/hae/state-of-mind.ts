import { z } from 'zod';
import { ownObject, type RecordParser } from './record-section.js';
import { dateField, optionalNumber } from './schema.js';
import { checkJsonDepth, checkOptionalSpan, checkValence, Problem, problemFromZod } from './validate.js';

/** Labels and associations are HealthKit enums, exported as names; a raw enum number is kept as text. */
const nameList = z.array(z.union([z.string(), z.number()])).nullish();

/**
 * `stateOfMind` (iOS 18+, §1.5 ◐): `{id, start, end, kind, labels[], associations[], valence,
 * valenceClassification, metadata}`. Dates in HAE form or ISO-8601 with Z (§1.2: sources
 * disagree; dates.ts reads both).
 */
const stateOfMindSchema = z.looseObject({
  id: z.union([z.string().min(1), z.number()]),
  start: dateField,
  end: dateField,
  kind: z.string().nullish(),
  labels: nameList,
  associations: nameList,
  valence: optionalNumber,
  valenceClassification: z.union([z.number(), z.string()]).nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
});

export const stateOfMindParser: RecordParser<'stateOfMind'> = {
  kind: 'stateOfMind',
  what: 'state of mind entry',
  parseItem(item, { bounds }) {
    const parsed = stateOfMindSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'state of mind entry');
    const entry = parsed.data;
    const span = checkOptionalSpan(entry.start, entry.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    const valence = entry.valence ?? null;
    const problem = checkValence(valence) ?? checkJsonDepth('metadata', item['metadata']);
    if (problem !== null) return problem;
    return {
      entryId: String(entry.id),
      start,
      end,
      kind: entry.kind ?? null,
      labels: (entry.labels ?? []).map(String),
      associations: (entry.associations ?? []).map(String),
      valence,
      valenceClassification: entry.valenceClassification ?? null,
      metadata: ownObject(item, 'metadata'),
    };
  },
};
