-- self-sensored: optional PostGIS support for workout routes.
--
-- When the server has PostGIS (the extension is available), workout_route_points gets
-- `geog geography(Point, 4326)`, generated from longitude/latitude, and a GiST index on it. Without
-- PostGIS this migration succeeds and changes nothing; the route queries use the latitude and
-- longitude columns instead (src/store/route-queries.ts), with the same results.
--
-- The logic is a function because PostGIS can be installed on the server after the first start:
-- the daemon calls ss_enable_postgis() again at every start, and it is a no-op once done.
-- It returns what it found: 'enabled', 'unavailable' or 'not_permitted'.
CREATE FUNCTION ss_enable_postgis() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  postgis_schema text;
BEGIN
  SELECT n.nspname INTO postgis_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis';
  IF postgis_schema IS NULL THEN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') THEN
      RETURN 'unavailable';
    END IF;
    -- Two daemons starting together must not both create it.
    PERFORM pg_advisory_xact_lock(hashtext('ss_enable_postgis'));
    -- A sub-block: creating PostGIS needs a superuser (it is not a trusted extension). Without
    -- that right the daemon goes on without it; an administrator can run CREATE EXTENSION later.
    BEGIN
      CREATE EXTENSION IF NOT EXISTS postgis;
    EXCEPTION
      WHEN insufficient_privilege THEN
        RAISE NOTICE 'PostGIS is installed on the server but this role may not create the extension: %', SQLERRM;
        RETURN 'not_permitted';
      WHEN duplicate_object OR unique_violation THEN
        NULL; -- created concurrently by another session
    END;
    SELECT n.nspname INTO postgis_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis';
  END IF;

  -- Checked first so that a start with everything in place takes no lock on the table.
  IF NOT EXISTS (SELECT 1 FROM pg_attribute
                  WHERE attrelid = 'workout_route_points'::regclass AND attname = 'geog' AND NOT attisdropped) THEN
    PERFORM pg_advisory_xact_lock(hashtext('ss_enable_postgis'));
    -- Generated, so no writer can forget it and it always agrees with latitude/longitude.
    -- Functions are schema-qualified: the daemon's search_path need not include PostGIS's schema.
    EXECUTE format(
      'ALTER TABLE workout_route_points ADD COLUMN IF NOT EXISTS geog %1$I.geography(Point, 4326) '
      'GENERATED ALWAYS AS (%1$I.geography(%1$I.st_setsrid(%1$I.st_makepoint(longitude, latitude), 4326))) STORED',
      postgis_schema);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  WHERE i.indrelid = 'workout_route_points'::regclass AND c.relname = 'workout_route_points_geog') THEN
    PERFORM pg_advisory_xact_lock(hashtext('ss_enable_postgis'));
    CREATE INDEX IF NOT EXISTS workout_route_points_geog ON workout_route_points USING gist (geog);
  END IF;
  RETURN 'enabled';
END;
$$;

SELECT ss_enable_postgis();
