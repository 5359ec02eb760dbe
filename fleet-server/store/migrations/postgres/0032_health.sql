-- Presence and health. device_presence is each device's online state from its
-- retained Presence (the last will) and the heartbeat deadline; last_heard is
-- the server's clock at the last message from the device (batched).
-- device_health holds the latest heartbeat; heartbeats is the sampled time
-- series, numbered per device (n), trimmed by age and by count.
-- Timestamps are Unix milliseconds.
CREATE TABLE device_presence (
	device_id    TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	online       BOOLEAN NOT NULL,
	reason       TEXT NOT NULL DEFAULT '', -- why offline
	session      TEXT NOT NULL DEFAULT '',
	announced_at BIGINT NOT NULL DEFAULT 0, -- Presence.At of the last Presence applied
	software     TEXT NOT NULL DEFAULT '',
	changed_at   BIGINT NOT NULL,
	last_heard   BIGINT NOT NULL
);
CREATE INDEX device_presence_online ON device_presence (last_heard) WHERE online;

CREATE TABLE device_health (
	device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	received_at BIGINT NOT NULL,
	heartbeat   BYTEA NOT NULL, -- CBOR of protocol.Heartbeat
	samples     BIGINT NOT NULL DEFAULT 0, -- n of the newest sample
	trimmed     BIGINT NOT NULL DEFAULT 0, -- samples up to this n are deleted
	sampled_at  BIGINT NOT NULL DEFAULT 0,
	sample_key  TEXT NOT NULL DEFAULT ''   -- what a change of forces a sample
);

CREATE TABLE heartbeats (
	device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	n           BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	heartbeat   BYTEA NOT NULL, -- CBOR of protocol.Heartbeat
	PRIMARY KEY (device_id, n)
);
CREATE INDEX heartbeats_age ON heartbeats (received_at);
