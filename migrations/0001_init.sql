-- self-sensored initial schema.
-- Sample tables are partitioned by month (UTC) on their time column; partitions are created by
-- ss_ensure_month_partition() ahead of time and for every month a payload touches.
-- `revision` counts how often the app revised a row's values (1 = as first stored); it also tells
-- an insert from an update in RETURNING, where partitioned tables cannot show xmax.
-- Every sample row carries the ingestion_id of the raw payload it came from (no foreign key:
-- checking one per sample row would halve bulk insert speed, and raw payloads are never deleted
-- while their samples exist).

CREATE TABLE users (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id            uuid PRIMARY KEY,
  user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- Public part of the key, used to find the row; the secret is only stored as an argon2id hash.
  prefix        text NOT NULL UNIQUE,
  secret_hash   text NOT NULL,
  label         text,
  scopes        text[] NOT NULL DEFAULT '{ingest}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE raw_ingestions (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id           bigint NOT NULL REFERENCES users (id),
  api_key_id        uuid REFERENCES api_keys (id) ON DELETE SET NULL,
  transport         text NOT NULL CHECK (transport IN ('mqtt-ws', 'mqtt-tcp', 'http', 'file')),
  topic             text,
  client_id         text,
  remote_address    text,
  payload           bytea NOT NULL,
  sha256            bytea NOT NULL CHECK (length(sha256) = 32),
  size_bytes        integer NOT NULL CHECK (size_bytes >= 0),
  received_at       timestamptz NOT NULL,
  -- The app re-sends identical exports; the bytes are kept once per user and re-receipts counted.
  last_received_at  timestamptz NOT NULL,
  receive_count     integer NOT NULL DEFAULT 1,
  status            text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'processed', 'failed')),
  attempts          integer NOT NULL DEFAULT 0,
  processed_at      timestamptz,
  counts            jsonb,
  rejected_count    integer NOT NULL DEFAULT 0,
  rejections        jsonb,
  not_stored        jsonb,
  error             text,
  CONSTRAINT raw_ingestions_user_sha256 UNIQUE (user_id, sha256)
);
CREATE INDEX raw_ingestions_pending ON raw_ingestions (id) WHERE status = 'received';
CREATE INDEX raw_ingestions_received_at ON raw_ingestions USING brin (received_at);

-- Every plain quantity metric, one table; metric names are open text.
CREATE TABLE quantity_samples (
  user_id             bigint NOT NULL,
  metric              text NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  metric_received     text NOT NULL,
  qty                 double precision NOT NULL,
  units               text NOT NULL,
  extra               jsonb,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, metric, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX quantity_samples_start_time ON quantity_samples USING brin (start_time);

CREATE TABLE heart_rate_samples (
  user_id             bigint NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  min_bpm             double precision,
  avg_bpm             double precision,
  max_bpm             double precision,
  units               text NOT NULL,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX heart_rate_samples_start_time ON heart_rate_samples USING brin (start_time);

CREATE TABLE blood_pressure_samples (
  user_id             bigint NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  systolic            double precision NOT NULL,
  diastolic           double precision NOT NULL,
  units               text NOT NULL,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX blood_pressure_samples_start_time ON blood_pressure_samples USING brin (start_time);

-- Aggregated sleep ("Summarize Data" on): one row per entry; a night can have several (naps,
-- several sources), so the key is the entry's start and source. Durations are in `units` (hr).
CREATE TABLE sleep_sessions (
  user_id             bigint NOT NULL,
  start_time          timestamptz NOT NULL,
  source              text NOT NULL DEFAULT '',
  utc_offset_minutes  smallint NOT NULL,
  local_date          date NOT NULL,
  entry_date          timestamptz NOT NULL,
  end_time            timestamptz,
  in_bed_start        timestamptz,
  in_bed_end          timestamptz,
  sleep_source        text,
  in_bed_source       text,
  total_sleep         double precision,
  asleep              double precision,
  core                double precision,
  deep                double precision,
  rem                 double precision,
  awake               double precision,
  in_bed              double precision,
  efficiency          double precision,
  units               text NOT NULL,
  ingestion_id        bigint NOT NULL,
  revision            integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, start_time, source)
) PARTITION BY RANGE (start_time);
CREATE INDEX sleep_sessions_start_time ON sleep_sessions USING brin (start_time);

-- Workout summaries (export version 2, keyed by the HealthKit workout id).
CREATE TABLE workouts (
  user_id               bigint NOT NULL,
  workout_id            text NOT NULL,
  start_time            timestamptz NOT NULL,
  end_time              timestamptz NOT NULL,
  utc_offset_minutes    smallint NOT NULL,
  local_date            date NOT NULL,
  name                  text NOT NULL,
  format_version        smallint NOT NULL DEFAULT 2,
  duration_seconds      double precision,
  location              text,
  is_indoor             boolean,
  active_energy         double precision,
  active_energy_units   text,
  total_energy          double precision,
  total_energy_units    text,
  distance              double precision,
  distance_units        text,
  heart_rate_min        double precision,
  heart_rate_avg        double precision,
  heart_rate_max        double precision,
  summaries             jsonb NOT NULL DEFAULT '{}',
  metadata              jsonb,
  ingestion_id          bigint NOT NULL,
  revision              integer NOT NULL DEFAULT 1,
  PRIMARY KEY (user_id, workout_id, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX workouts_start_time ON workouts USING brin (start_time);

-- Creates the month partition of `parent` that holds `month_start` (UTC month), if missing.
-- Safe to call concurrently: the advisory lock makes a second creator wait for the first, and
-- since an advisory lock does not refresh the catalog cache, the second one's CREATE can still
-- find the table exists: that error means the work is done.
CREATE FUNCTION ss_ensure_month_partition(parent regclass, month_start date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  first_day date := date_trunc('month', month_start)::date;
  partition_name text := format('%s_%s', (SELECT relname FROM pg_class WHERE oid = parent), to_char(first_day, 'YYYY_MM'));
  parent_schema text := (SELECT nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent);
BEGIN
  IF to_regclass(format('%I.%I', parent_schema, partition_name)) IS NOT NULL THEN
    RETURN partition_name;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('ss_partition:' || parent_schema || '.' || partition_name));
  BEGIN
    -- Bounds are written with an explicit UTC offset: a bare date would be read in the
    -- session's TimeZone.
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
      parent_schema, partition_name, parent,
      to_char(first_day, 'YYYY-MM-DD') || ' 00:00:00+00',
      to_char((first_day + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    NULL;
  END;
  RETURN partition_name;
END;
$$;
