/*
 * Metric names are open text (§1.8): the app's vocabulary drifted across versions and the
 * official server's enum disagrees with real payloads. Unknown names are never rejected; they
 * pass through folded to snake_case.
 *
 * Choice of canonical spelling: the spelling seen in REAL payloads wins over the official
 * server's enum, because the app is the producer and the enum was shown wrong wherever a real
 * capture exists (e.g. `vo2_max` in the 2021 and 2025 captures vs the enum's `vo2max`;
 * `dietary_caffeine` in the 2025 capture vs `caffeine`). Punctuation the app copied from UI
 * labels (`six-minute_…`, `stair_speed:_up`, `weight_&_body_mass`) is folded to plain
 * snake_case, which is also how the current app spells `weight_body_mass` (2025 capture).
 */

/** Folded spelling (see foldMetricName) → canonical spelling. Only true renames are listed. */
export const metricAliases: Readonly<Record<string, string>> = {
  // Q14: enum spelling `vo2max`; real payloads (2021, 2025) say `vo2_max`.
  vo2max: 'vo2_max',
  // Enum drops the `dietary_` prefix for these three; real payloads keep it.
  caffeine: 'dietary_caffeine',
  cholesterol: 'dietary_cholesterol',
  biotin: 'dietary_biotin',
  walking_heart_rate: 'walking_heart_rate_average',
  environmental_audio: 'environmental_audio_exposure',
  headphone_audio: 'headphone_audio_exposure',
  // The enum's `monosaturated_fat` is a misspelling of the real `monounsaturated_fat`.
  monosaturated_fat: 'monounsaturated_fat',
  swim_stroke_count: 'swimming_stroke_count',
  wheelchair_push_count: 'push_count',
  downhill_snow_sports: 'distance_downhill_snow_sports',
  forced_expiratory_volume: 'forced_expiratory_volume_1',
  number_of_time_fallen: 'number_of_times_fallen',
  // Not aliased: `high_/low_/irregular_heart_rate_notifications` (2021 names inside `metrics`).
  // Their successor is the top-level `heartRateNotifications` array with another shape (§1.5),
  // so they stay open names read as quantity points. `six-minute_…`, `stair_speed:_up/_down`
  // and `weight_&_body_mass` need no entry: foldMetricName already gives the canonical name.
};

/**
 * Lower-case, trim, and fold every run of characters outside [a-z0-9] into one `_`
 * (`stair_speed:_up` ⇒ `stair_speed_up`, `six-minute_walking_test_distance` ⇒
 * `six_minute_walking_test_distance`, `weight_&_body_mass` ⇒ `weight_body_mass`). A name made
 * only of other characters is kept lower-cased and trimmed rather than turned into ''.
 */
export function foldMetricName(received: string): string {
  const lowered = received.trim().toLowerCase();
  if (/^[a-z0-9]+(?:_[a-z0-9]+)*$/.test(lowered)) return lowered; // the usual case, no allocation
  const folded = lowered.replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return folded === '' ? lowered : folded;
}

/** The canonical metric name for a name as received. */
export function canonicalMetricName(received: string): string {
  const folded = foldMetricName(received);
  // hasOwn, not `??`: a metric named `constructor` must not pick up Object.prototype members.
  return Object.hasOwn(metricAliases, folded) ? metricAliases[folded]! : folded;
}
