/** One payload with every Health Auto Export data type, in the documented shapes (§1.4–1.6). */
export function allTypesPayload(): Record<string, unknown> {
  return {
    data: {
      metrics: [
        { name: 'blood_glucose', units: 'mg/dL', data: [{ date: '2025-05-01 07:30:00 +0200', qty: 92, mealTime: 'Before Meal', source: 'Dexcom' }] },
        { name: 'insulin_delivery', units: 'IU', data: [{ date: '2025-05-01 07:35:00 +0200', qty: 4, reason: 'Bolus' }] },
        { name: 'handwashing', units: 's', data: [{ date: '2025-05-01 08:00:00 +0200', qty: 25, value: 'Complete', source: 'Watch' }] },
        { name: 'sexual_activity', units: 'count', data: [{ date: '2025-05-01 23:00:00 +0200', Unspecified: 0, 'Protection Used': 1, 'Protection Not Used': 0 }] },
        { name: 'apple_sleeping_wrist_temperature', units: 'degF', data: [{ date: '2025-05-02 05:00:00 +0200', qty: 96.8 }] },
        {
          name: 'sleep_analysis',
          units: 'hr',
          data: [
            { startDate: '2025-05-01 23:10:00 +0200', endDate: '2025-05-02 06:40:00 +0200', qty: 7.5, value: 'In Bed', source: 'iPhone', date: null },
            { startDate: '2025-05-01 23:30:00 +0200', endDate: '2025-05-02 01:00:00 +0200', qty: 1.5, value: 'Core', source: 'Watch' },
            { startDate: '2025-05-02 01:00:00 +0200', endDate: '2025-05-02 01:45:00 +0200', qty: 0.75, value: 'Deep', source: 'Watch' },
          ],
        },
      ],
      workouts: [
        {
          name: 'Walking',
          start: '2025-05-03 09:00:00 +0200',
          end: '2025-05-03 09:40:00 +0200',
          totalEnergy: { qty: 180, units: 'kcal' },
          activeEnergy: { qty: 150, units: 'kcal' },
          avgHeartRate: { qty: 104, units: 'bpm' },
          maxHeartRate: { qty: 131, units: 'bpm' },
          distance: { qty: 3.1, units: 'km' },
          elevation: { ascent: 42, descent: 40, units: 'm' },
          heartRateData: [{ date: '2025-05-03 09:05:00 +0200', qty: 101, units: 'bpm' }, { date: '2025-05-03 09:10:00 +0200', qty: 110, units: 'bpm' }],
          route: [{ lat: 52.52, lon: 13.405, altitude: 34, timestamp: '2025-05-03 09:00:05 +0200' }, { lat: 52.521, lon: 13.406, altitude: 35, timestamp: '2025-05-03 09:00:35 +0200' }],
        },
        {
          id: 'A1B2C3D4-0000-4000-8000-000000000001',
          name: 'Outdoor Cycle',
          start: '2025-05-04 18:00:00 +0200',
          end: '2025-05-04 19:00:00 +0200',
          duration: 3600,
          activeEnergyBurned: { qty: 520, units: 'kcal' },
          heartRate: { min: { qty: 95, units: 'bpm' }, avg: { qty: 138, units: 'bpm' }, max: { qty: 171, units: 'bpm' } },
          heartRateData: [{ date: '2025-05-04 18:01:00 +0200', Min: 95, Avg: 120, Max: 130, units: 'bpm', source: 'Watch' }],
          cyclingPower: [{ date: '2025-05-04 18:01:00 +0200', qty: 180, units: 'W', source: 'Watch' }],
          route: [{ latitude: 48.1, longitude: 11.5, altitude: 520, course: -1, courseAccuracy: -1, horizontalAccuracy: 4, verticalAccuracy: 3, timestamp: '2025-05-04 18:00:10 +0200', speed: 6.2, speedAccuracy: 0.5 }],
        },
      ],
      stateOfMind: [
        { id: 'som-1', start: '2025-05-05 20:00:00 +0200', end: '2025-05-05 20:00:00 +0200', kind: 'dailyMood', labels: ['calm', 'content'], associations: ['family'], valence: 0.45, valenceClassification: 5, metadata: {} },
      ],
      medications: [
        { displayText: 'Ibuprofen 200 mg', start: '2025-05-05 08:00:00 +0200', end: '2025-05-05 08:00:00 +0200', form: 'Tablet', status: 'Taken', isArchived: false, dosage: 1, codings: [{ code: '5640', system: 'RxNorm' }] },
      ],
      symptoms: [{ name: 'Headache', start: '2025-05-05 07:00:00 +0200', end: '2025-05-05 07:00:00 +0200', severity: 'Mild', userEntered: true, source: 'Health' }],
      cycleTracking: [{ name: 'Menstrual Flow', start: '2025-05-06 00:00:00 +0200', end: '2025-05-06 00:00:00 +0200', value: 'Medium', isCycleStart: true }],
      ecg: [
        {
          start: '2025-05-06 10:00:00 +0200',
          end: '2025-05-06 10:00:30 +0200',
          classification: 'Sinus Rhythm',
          severity: 'None',
          averageHeartRate: 64,
          numberOfVoltageMeasurements: 3,
          samplingFrequency: 512,
          source: 'Watch',
          voltageMeasurements: [
            { date: '2025-05-06 10:00:00 +0200', voltage: 0.000012, units: 'V' },
            { date: '2025-05-06 10:00:00 +0200', voltage: -0.0000305, units: 'V' },
            { date: '2025-05-06 10:00:00 +0200', voltage: 0.000201, units: 'V' },
          ],
        },
      ],
      heartRateNotifications: [
        {
          start: '2025-05-07 14:00:00 +0200',
          end: '2025-05-07 14:10:00 +0200',
          threshold: 120,
          heartRate: [{ hr: 125, units: 'bpm', timestamp: { start: '2025-05-07 14:00:00 +0200', end: '2025-05-07 14:05:00 +0200', interval: { duration: 300, units: 's' } } }],
          heartRateVariation: [{ hrv: 31, units: 'ms', timestamp: { start: '2025-05-07 14:00:00 +0200', end: '2025-05-07 14:05:00 +0200', interval: { duration: 300, units: 's' } } }],
        },
      ],
    },
  };
}

/** Rows each table gets from allTypesPayload(), counted by hand from the payload above. */
export const allTypesExpected: Record<string, number> = {
  quantity_samples: 5,
  sleep_segments: 3,
  workouts: 2,
  workout_series: 4,
  workout_route_points: 3,
  state_of_mind: 1,
  medications: 1,
  symptoms: 1,
  cycle_tracking: 1,
  ecg_readings: 1,
  heart_rate_notifications: 1,
};
