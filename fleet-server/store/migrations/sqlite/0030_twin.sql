-- Twin: desired configuration per group and per-device overrides (JSON
-- objects), each device's effective desired document with its version, and
-- what the device reports. Timestamps are Unix milliseconds.
CREATE TABLE twin_groups (
	group_id   TEXT PRIMARY KEY REFERENCES groups(id) ON DELETE CASCADE,
	config     TEXT NOT NULL,
	version    BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE twin_overrides (
	device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	config     TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- version rises by one whenever config (the merged document) changes;
-- published is the highest version handed to the broker.
CREATE TABLE twin_desired (
	device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	version    BIGINT NOT NULL,
	config     TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	published  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX twin_desired_unpublished ON twin_desired (device_id) WHERE published < version;

CREATE TABLE twin_reported (
	device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	version     BIGINT NOT NULL,
	rejected    BIGINT NOT NULL DEFAULT 0,
	reason      TEXT NOT NULL DEFAULT '',
	config      TEXT, -- JSON, NULL when the device does not report it
	reported_at BIGINT NOT NULL
);
