-- Commands: a durable queue per device, ordered by (issued_at, id). A command
-- is pending until its result arrives (outcome set, first result wins) or it
-- expires undelivered (expired_at set). Timestamps are Unix milliseconds.
CREATE TABLE commands (
	id            TEXT PRIMARY KEY,
	device_id     TEXT NOT NULL REFERENCES devices(id),
	fanout_id     TEXT NOT NULL DEFAULT '', -- the group send it belongs to
	name          TEXT NOT NULL,
	args          TEXT NOT NULL DEFAULT '{}', -- JSON object of strings
	issued_at     BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	sent_count    INTEGER NOT NULL DEFAULT 0,
	first_sent_at BIGINT,
	last_sent_at  BIGINT,
	expired_at    BIGINT,
	outcome       INTEGER, -- protocol.Outcome
	message       TEXT,
	output        BYTEA,
	result_at     BIGINT, -- the device's clock
	received_at   BIGINT  -- the server's clock
);
CREATE INDEX commands_device ON commands (device_id, issued_at, id);
CREATE INDEX commands_fanout ON commands (fanout_id) WHERE fanout_id <> '';
CREATE INDEX commands_open ON commands (expires_at) WHERE outcome IS NULL AND expired_at IS NULL;
