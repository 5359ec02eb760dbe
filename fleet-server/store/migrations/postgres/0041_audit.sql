-- Audit log (store/audit.go, fleet-server/audit): append-only and hash
-- chained. hash is SHA-256 over the canonical encoding of the entry
-- including prev_hash, the hash of the entry before it (32 zero bytes for
-- the first). audit_head holds the last entry's seq and hash, so that a
-- deleted tail shows too; appending locks it, which orders the appends of
-- all replicas. Timestamps are Unix milliseconds.
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	at        BIGINT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL DEFAULT '',
	details   TEXT NOT NULL DEFAULT '{}', -- JSON object, never personal data
	prev_hash BYTEA NOT NULL,
	hash      BYTEA NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq) WHERE target <> '';
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- The server never changes or deletes an entry; this keeps a bug from doing
-- it (a database owner can drop it, which Verify then catches by the
-- chain).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
