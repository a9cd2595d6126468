-- raw_ingestions gets one row per message: at the rates of many small MQTT payloads it is written
-- as often as the sample tables. Its two foreign keys made PostgreSQL run two lookups with a row
-- lock for every payload (measured: ~14 % of the database's time per small payload, 8-9 µs of
-- ~58). The rows' user and key are always those of the API key the daemon has just
-- authenticated, so the checks on insert never refused anything the daemon writes; what the
-- keys protected against is kept by triggers on the two small tables instead, which run only
-- when a user or key is deleted (by hand: the daemon never deletes either):
-- - a user who still has stored payloads cannot be deleted or truncated (as before: the
--   foreign key's default NO ACTION);
-- - deleting an API key clears api_key_id in the payloads it sent (as before: ON DELETE SET
--   NULL); a key whose id is changed takes its payloads along; api_keys cannot be truncated
--   while payloads name its keys.
-- Each trigger first locks raw_ingestions against writers until its transaction ends, so
-- payloads being stored at that moment are waited for and seen, as the foreign key's row lock
-- made them be.

ALTER TABLE raw_ingestions
  DROP CONSTRAINT raw_ingestions_user_id_fkey,
  DROP CONSTRAINT raw_ingestions_api_key_id_fkey;

CREATE FUNCTION ss_users_keep_payloads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE raw_ingestions IN SHARE MODE;
  IF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (SELECT 1 FROM raw_ingestions) THEN
      RAISE EXCEPTION 'cannot truncate users: raw_ingestions holds stored payloads'
        USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM raw_ingestions WHERE user_id = OLD.id) THEN
    RAISE EXCEPTION 'cannot delete user %: raw_ingestions holds payloads of this user', OLD.id
      USING ERRCODE = 'foreign_key_violation',
            HINT = 'Payloads are health data kept for good; delete the user''s raw_ingestions rows (and samples) first if that is really meant.';
  END IF;
  RETURN OLD;
END;
$$;

CREATE TRIGGER ss_users_keep_payloads BEFORE DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION ss_users_keep_payloads();
CREATE TRIGGER ss_users_keep_payloads_truncate BEFORE TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION ss_users_keep_payloads();

CREATE FUNCTION ss_api_keys_follow_payloads() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- SHARE ROW EXCLUSIVE: blocks the daemon's inserts like SHARE, and two of these one another.
  LOCK TABLE raw_ingestions IN SHARE ROW EXCLUSIVE MODE;
  IF TG_OP = 'TRUNCATE' THEN
    IF EXISTS (SELECT 1 FROM raw_ingestions WHERE api_key_id IS NOT NULL) THEN
      RAISE EXCEPTION 'cannot truncate api_keys: raw_ingestions names keys in it'
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE raw_ingestions SET api_key_id = NULL WHERE api_key_id = OLD.id;
  ELSIF NEW.id IS DISTINCT FROM OLD.id THEN
    UPDATE raw_ingestions SET api_key_id = NEW.id WHERE api_key_id = OLD.id;
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER ss_api_keys_follow_payloads AFTER DELETE OR UPDATE OF id ON api_keys
  FOR EACH ROW EXECUTE FUNCTION ss_api_keys_follow_payloads();
CREATE TRIGGER ss_api_keys_follow_payloads_truncate BEFORE TRUNCATE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION ss_api_keys_follow_payloads();
