-- self-sensored: key scopes and origin, and the authentication log.
--
-- api_keys.prefix is the public lookup value of every key: the 10-character prefix of a generated
-- key (ss_<prefix>_<secret>), or `own_` + 16 hex digits of a SHA-256 of a key the user chose
-- (src/auth/key-format.ts). Either way the key itself is stored only as an argon2id hash.
ALTER TABLE api_keys
  ADD COLUMN origin text NOT NULL DEFAULT 'generated' CHECK (origin IN ('generated', 'own')),
  ADD CONSTRAINT api_keys_scopes_known CHECK (
    cardinality(scopes) BETWEEN 1 AND 3 AND scopes <@ ARRAY['ingest', 'read', 'admin']::text[]
  );

-- Every authentication attempt (MQTT CONNECT, REST request), written in batches off the hot path.
-- Never holds a secret: key_prefix is the public lookup value, and only for keys that exist, or
-- the public prefix a malformed-secret `ss_` key carried.
CREATE TABLE auth_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at              timestamptz NOT NULL,
  outcome         text NOT NULL CHECK (outcome IN ('success', 'failure', 'throttled')),
  -- NULL on success; else the reason (missing, malformed, unknown_key, wrong_secret, revoked,
  -- expired, insufficient_scope, throttled, or unavailable when the key could not be checked).
  reason          text,
  transport       text NOT NULL CHECK (transport IN ('mqtt-ws', 'mqtt-tcp', 'http', 'file')),
  -- As seen on the socket; text, not inet, so that nothing a peer does can fail the batch insert.
  remote_address  text,
  client_id       text CHECK (length(client_id) <= 256),
  key_prefix      text,
  -- No foreign keys: the log outlives deleted users and keys, and must never slow their deletion.
  key_id          uuid,
  user_id         bigint
);
-- Pruning (AUTH_EVENTS_RETENTION_DAYS) and "latest attempts" both read by time.
CREATE INDEX auth_events_at ON auth_events (at);
CREATE INDEX auth_events_key_id_at ON auth_events (key_id, at) WHERE key_id IS NOT NULL;
