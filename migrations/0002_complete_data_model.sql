-- self-sensored: every Health Auto Export data type gets a table, and the medical ranges become
-- CHECK constraints.
--
-- New tables follow 0001: partitioned by month (UTC) on their time column, partitions made by
-- ss_ensure_month_partition(), BRIN on time, `revision` (1 = as first stored), and a NATURAL
-- primary key so that re-sending any export is idempotent. A table's time column is always
-- `start_time` (for a series or route point: the point's time).
--
-- Why the database repeats the parser's checks: the parser rejects an out-of-range value item by
-- item (src/hae/limits.ts); these constraints are the second line of defence, so that no other
-- writer (a bug, a future import path, hand-written SQL) can store an impossible value. They hold
-- the DEFAULT ranges: configuration may only narrow the parser's ranges, never widen them, so a
-- value the parser accepts always passes here. Each is named ss_chk_<table>_<what> so that an
-- error says what failed. Ranges are inclusive (BETWEEN), as in the parser; NULL passes.

-- Unaggregated sleep ("Summarize Data" off): one row per stage segment. Two sources can record
-- the same stretch, and one source can report two stages starting together (in bed + asleep).
CREATE TABLE sleep_segments (
  user_id             bigint NOT NULL,
  source              text NOT NULL DEFAULT '',
  start_time          timestamptz NOT NULL,
  stage               text NOT NULL,
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  end_time            timestamptz NOT NULL,
  value_received      text NOT NULL,
  hours               double precision,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, source, start_time, stage),
  CONSTRAINT ss_chk_sleep_segments_stage CHECK (stage IN ('in_bed', 'asleep', 'core', 'deep', 'rem', 'awake', 'unspecified')),
  -- A zero-length segment is not a real one.
  CONSTRAINT ss_chk_sleep_segments_end_after_start CHECK (end_time > start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX sleep_segments_start_time ON sleep_segments USING brin (start_time);

-- A workout's per-minute series (heartRateData, heartRateRecovery, activeEnergy, stepCount, …),
-- partitioned by the point's own time (a workout can cross a month boundary).
CREATE TABLE workout_series (
  user_id             bigint NOT NULL,
  workout_id          text NOT NULL,
  series              text NOT NULL,
  start_time          timestamptz NOT NULL,
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  qty                 double precision,
  min                 double precision,
  avg                 double precision,
  max                 double precision,
  units               text NOT NULL,
  source              text NOT NULL DEFAULT '',
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, workout_id, series, start_time),
  CONSTRAINT ss_chk_workout_series_heart_rate CHECK (
    series NOT IN ('heartRateData', 'heartRateRecovery')
    OR ((qty IS NULL OR qty BETWEEN 15 AND 300)
      AND (min IS NULL OR min BETWEEN 15 AND 300)
      AND (avg IS NULL OR avg BETWEEN 15 AND 300)
      AND (max IS NULL OR max BETWEEN 15 AND 300)))
) PARTITION BY RANGE (start_time);
CREATE INDEX workout_series_start_time ON workout_series USING brin (start_time);

-- GPS route of a workout. A bounding-box query must work without PostGIS: the btree on
-- (user_id, latitude, longitude) serves the latitude range and filters longitude inside the
-- index. Migration 0003 adds a geography column and a GiST index when PostGIS is there.
CREATE TABLE workout_route_points (
  user_id              bigint NOT NULL,
  workout_id           text NOT NULL,
  start_time           timestamptz NOT NULL,
  utc_offset_minutes   smallint NOT NULL,
  local_date           date NOT NULL,
  latitude             double precision NOT NULL,
  longitude            double precision NOT NULL,
  altitude             double precision,
  course               double precision,
  course_accuracy      double precision,
  horizontal_accuracy  double precision,
  vertical_accuracy    double precision,
  speed                double precision,
  speed_accuracy       double precision,
  ingestion_id         bigint NOT NULL,
  revision             integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, workout_id, start_time),
  CONSTRAINT ss_chk_workout_route_points_latitude CHECK (latitude BETWEEN -90 AND 90),
  CONSTRAINT ss_chk_workout_route_points_longitude CHECK (longitude BETWEEN -180 AND 180)
) PARTITION BY RANGE (start_time);
CREATE INDEX workout_route_points_start_time ON workout_route_points USING brin (start_time);
CREATE INDEX workout_route_points_lat_lon ON workout_route_points (user_id, latitude, longitude);

-- iOS 18+ State of Mind entries. valence_classification is text: HAE documents a number, but a
-- label string is as plausible, and both must be kept as received.
CREATE TABLE state_of_mind (
  user_id                 bigint NOT NULL,
  entry_id                text NOT NULL,
  start_time              timestamptz NOT NULL,
  utc_offset_minutes      smallint NOT NULL,
  local_date              date NOT NULL,
  end_time                timestamptz,
  kind                    text,
  labels                  text[] NOT NULL DEFAULT '{}',
  associations            text[] NOT NULL DEFAULT '{}',
  valence                 double precision,
  valence_classification  text,
  metadata                jsonb,
  ingestion_id            bigint NOT NULL,
  revision                integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, entry_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX state_of_mind_start_time ON state_of_mind USING brin (start_time);

-- Medication dose events. dosage is text: HAE sends a number or a string ("1 tablet").
CREATE TABLE medications (
  user_id             bigint NOT NULL,
  display_text        text NOT NULL,
  start_time          timestamptz NOT NULL,
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  nickname            text,
  end_time            timestamptz,
  scheduled_date      timestamptz,
  form                text,
  status              text,
  is_archived         boolean,
  dosage              text,
  codings             jsonb,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, display_text, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX medications_start_time ON medications USING brin (start_time);

-- Symptoms; start == end for a point event.
CREATE TABLE symptoms (
  user_id             bigint NOT NULL,
  name                text NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  end_time            timestamptz,
  severity            text,
  user_entered        boolean,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, name, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX symptoms_start_time ON symptoms USING brin (start_time);

-- Cycle tracking events (menstrual flow, ovulation test, …); value is a label or a number.
CREATE TABLE cycle_tracking (
  user_id             bigint NOT NULL,
  name                text NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  end_time            timestamptz,
  value               text,
  is_cycle_start      boolean,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, name, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX cycle_tracking_start_time ON cycle_tracking USING brin (start_time);

-- ECG readings: ONE row per reading, its ≈15,360 voltages (30 s at 512 Hz) in one float8[]
-- (exact round trip of the received numbers; TOAST compresses it). A row per voltage would
-- multiply the table by 15,000 for data that is only ever read whole.
CREATE TABLE ecg_readings (
  user_id                          bigint NOT NULL,
  start_time                       timestamptz NOT NULL,
  source                           text NOT NULL DEFAULT '',
  utc_offset_minutes               smallint NOT NULL,
  local_date                       date NOT NULL,
  end_time                         timestamptz,
  classification                   text,
  severity                         text,
  average_heart_rate               double precision,
  number_of_voltage_measurements   integer,
  sampling_frequency_hz            double precision,
  voltages                         double precision[] NOT NULL DEFAULT '{}',
  voltage_units                    text,
  ingestion_id                     bigint NOT NULL,
  revision                         integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX ecg_readings_start_time ON ecg_readings USING brin (start_time);

-- High/low/irregular heart rate notifications, with the readings that triggered them as sent.
CREATE TABLE heart_rate_notifications (
  user_id               bigint NOT NULL,
  start_time            timestamptz NOT NULL,
  utc_offset_minutes    smallint NOT NULL,
  local_date            date NOT NULL,
  end_time              timestamptz,
  threshold             double precision,
  heart_rate            jsonb NOT NULL DEFAULT '[]',
  heart_rate_variation  jsonb NOT NULL DEFAULT '[]',
  ingestion_id          bigint NOT NULL,
  revision              integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX heart_rate_notifications_start_time ON heart_rate_notifications USING brin (start_time);

-- The same ranges on the tables of 0001 (added on the partitioned parents, so every partition,
-- present and future, has them).
ALTER TABLE heart_rate_samples
  ADD CONSTRAINT ss_chk_heart_rate_samples_min_bpm CHECK (min_bpm IS NULL OR min_bpm BETWEEN 15 AND 300),
  ADD CONSTRAINT ss_chk_heart_rate_samples_avg_bpm CHECK (avg_bpm IS NULL OR avg_bpm BETWEEN 15 AND 300),
  ADD CONSTRAINT ss_chk_heart_rate_samples_max_bpm CHECK (max_bpm IS NULL OR max_bpm BETWEEN 15 AND 300);

ALTER TABLE workouts
  ADD CONSTRAINT ss_chk_workouts_heart_rate_min CHECK (heart_rate_min IS NULL OR heart_rate_min BETWEEN 15 AND 300),
  ADD CONSTRAINT ss_chk_workouts_heart_rate_avg CHECK (heart_rate_avg IS NULL OR heart_rate_avg BETWEEN 15 AND 300),
  ADD CONSTRAINT ss_chk_workouts_heart_rate_max CHECK (heart_rate_max IS NULL OR heart_rate_max BETWEEN 15 AND 300),
  -- A zero-length workout is not a real one.
  ADD CONSTRAINT ss_chk_workouts_end_after_start CHECK (end_time > start_time);

ALTER TABLE quantity_samples
  ADD CONSTRAINT ss_chk_quantity_samples_heart_rate
    CHECK (metric NOT IN ('resting_heart_rate', 'walking_heart_rate_average') OR qty BETWEEN 15 AND 300),
  -- Percent; the parser scales a 0–1 fraction before its check, and a fraction is in range too.
  ADD CONSTRAINT ss_chk_quantity_samples_blood_oxygen
    CHECK (metric <> 'blood_oxygen_saturation' OR qty BETWEEN 0 AND 100);

ALTER TABLE blood_pressure_samples
  ADD CONSTRAINT ss_chk_blood_pressure_samples_systolic CHECK (systolic BETWEEN 50 AND 250),
  ADD CONSTRAINT ss_chk_blood_pressure_samples_diastolic CHECK (diastolic BETWEEN 30 AND 150),
  ADD CONSTRAINT ss_chk_blood_pressure_samples_systolic_above_diastolic CHECK (systolic > diastolic);
