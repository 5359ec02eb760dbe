-- Audit log (store/audit.go, fleet-server/audit): append-only and hash
-- chained. hash is SHA-256 over the canonical encoding of the entry
-- including prev_hash, the hash of the entry before it (32 zero bytes for
-- the first). audit_head holds the last entry's seq and hash, so that a
-- deleted tail shows too. Timestamps are Unix milliseconds.
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	at        BIGINT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL DEFAULT '',
	details   TEXT NOT NULL DEFAULT '{}', -- JSON object, never personal data
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq) WHERE target <> '';
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- The server never changes or deletes an entry; these keep a bug from doing
-- it (someone with the database file can drop them, which Verify then
-- catches by the chain).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
