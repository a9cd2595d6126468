-- Raw payloads reach 100 MB. pglz, the default TOAST compression, spends about a second on one of
-- that size before the commit the acknowledgement waits for; lz4 takes less than half of that and
-- also reads back faster. Only new values use lz4; stored ones stay as they are. A server built
-- without lz4 keeps pglz (SET COMPRESSION would fail there).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE raw_ingestions ALTER COLUMN payload SET COMPRESSION lz4;
  END IF;
END
$$;
