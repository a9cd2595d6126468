import { z } from 'zod';
import type { RecordParser } from './record-section.js';
import { dateField, optionalNumber, optionalSource } from './schema.js';
import { checkOptionalSpan, describeValue, isPlainObject, Problem, problemFromZod, sourceOrEmpty } from './validate.js';

/**
 * `ecg` (§1.5 ◐): one reading with ≈15,360 `voltageMeasurements [{date, voltage, units}]` per
 * 30 s at 512 Hz. The voltages become ONE array on one row, never a row each; they are read with
 * a plain loop (zod per measurement would cost more than the rest of the reading).
 */
const ecgSchema = z.looseObject({
  start: dateField,
  end: dateField,
  classification: z.string().nullish(),
  severity: z.string().nullish(),
  averageHeartRate: optionalNumber,
  numberOfVoltageMeasurements: optionalNumber,
  samplingFrequency: optionalNumber,
  source: optionalSource,
  voltageMeasurements: z.array(z.unknown()).nullish(),
});

interface Voltages {
  voltages: number[];
  voltageUnits: string | null;
}

/** Every measurement must carry a finite voltage; one that does not rejects the reading (a gap would shift the trace). */
function readVoltages(measurements: readonly unknown[]): Voltages | Problem {
  const voltages = new Array<number>(measurements.length);
  let voltageUnits: string | null = null;
  for (let i = 0; i < measurements.length; i++) {
    const measurement = measurements[i];
    const field = `voltageMeasurements[${i}]`;
    if (!isPlainObject(measurement)) return new Problem(field, 'invalid_shape', `${field} must be an object but is ${describeValue(measurement)}`);
    const voltage = measurement['voltage'];
    if (typeof voltage !== 'number' || !Number.isFinite(voltage)) {
      if (voltage === undefined || voltage === null) return new Problem(`${field}.voltage`, 'missing_value', `${field} has no voltage`);
      return new Problem(`${field}.voltage`, 'not_a_number', `${field}.voltage must be a number but is ${describeValue(voltage)}`);
    }
    const units = measurement['units'];
    if (typeof units === 'string') {
      if (voltageUnits === null) voltageUnits = units;
      else if (units !== voltageUnits) return new Problem(`${field}.units`, 'invalid_shape', `${field}.units is ${describeValue(units)} but earlier measurements are in ${voltageUnits}`);
    }
    voltages[i] = voltage;
  }
  return { voltages, voltageUnits };
}

export const ecgParser: RecordParser<'ecg'> = {
  kind: 'ecg',
  what: 'ECG reading',
  parseItem(item, { bounds }) {
    const parsed = ecgSchema.safeParse(item);
    if (!parsed.success) return problemFromZod(parsed.error, item, 'ECG reading');
    const reading = parsed.data;
    const span = checkOptionalSpan(reading.start, reading.end, bounds);
    if (span instanceof Problem) return span;
    const { start, end } = span;
    const voltages = readVoltages(reading.voltageMeasurements ?? []);
    if (voltages instanceof Problem) return voltages;
    return {
      start,
      end,
      classification: reading.classification ?? null,
      severity: reading.severity ?? null,
      averageHeartRate: reading.averageHeartRate ?? null,
      numberOfVoltageMeasurements: reading.numberOfVoltageMeasurements ?? null,
      samplingFrequencyHz: reading.samplingFrequency ?? null,
      source: sourceOrEmpty(reading.source),
      voltages: voltages.voltages,
      voltageUnits: voltages.voltageUnits,
    };
  },
};
