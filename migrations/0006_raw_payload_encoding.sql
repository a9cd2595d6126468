-- Payloads of 8 MB and more are stored brotli-compressed by the daemon (payload_encoding 'br'):
-- PostgreSQL spent about two seconds of CPU receiving and compressing a 100 MB payload itself,
-- on the path to its acknowledgement, against a tenth of a second for brotli at quality 0 and
-- the receipt of a twelfth of the bytes. Smaller payloads stay as sent ('identity'), readable
-- with convert_from(payload, 'UTF8'). sha256 and size_bytes are always those of the bytes sent.
ALTER TABLE raw_ingestions
  ADD COLUMN payload_encoding text NOT NULL DEFAULT 'identity'
    CONSTRAINT raw_ingestions_payload_encoding_check CHECK (payload_encoding IN ('identity', 'br'));
