/**
 * Medical and physical ranges a value must fall in to be stored. The defaults are also the
 * database CHECK constraints (migration 0002), so configuration may narrow them but never widen
 * them: a value the database would refuse must be rejected here, item by item, instead of
 * failing a whole payload's transaction.
 */
export interface ValidationLimits {
  heartRate: { min: number; max: number };
  systolic: { min: number; max: number };
  diastolic: { min: number; max: number };
  /** Percent; a 0–1 fraction is recognised and scaled to percent before this check. */
  bloodOxygen: { min: number; max: number };
  /** Degrees Celsius; Fahrenheit values are converted for the check and stored as received. */
  bodyTemperatureC: { min: number; max: number };
  latitude: { min: number; max: number };
  longitude: { min: number; max: number };
}

export const defaultLimits: ValidationLimits = {
  heartRate: { min: 15, max: 300 },
  systolic: { min: 50, max: 250 },
  diastolic: { min: 30, max: 150 },
  bloodOxygen: { min: 0, max: 100 },
  bodyTemperatureC: { min: 25, max: 45 },
  latitude: { min: -90, max: 90 },
  longitude: { min: -180, max: 180 },
};
