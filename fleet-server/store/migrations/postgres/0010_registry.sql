-- Registry: device groups, devices with their inventory, enrollment codes and
-- the certificates issued to devices. Timestamps are Unix milliseconds.
CREATE TABLE groups (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);

CREATE TABLE devices (
	id               TEXT PRIMARY KEY,
	group_id         TEXT NOT NULL REFERENCES groups(id),
	revoked_at       BIGINT,
	revoked_reason   TEXT NOT NULL DEFAULT '',
	last_seen        BIGINT,
	created_at       BIGINT NOT NULL,
	model            TEXT NOT NULL DEFAULT '',
	serial_number    TEXT NOT NULL DEFAULT '',
	software_version TEXT NOT NULL DEFAULT '',
	peripherals      TEXT NOT NULL DEFAULT '[]', -- JSON array of {"name","kind"}
	location_label   TEXT NOT NULL DEFAULT '',
	inventory_at     BIGINT NOT NULL,
	enroll_code_id   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX devices_group ON devices (group_id);

-- Only the SHA-256 of a code is stored; the code itself is shown once.
CREATE TABLE enroll_codes (
	id         TEXT PRIMARY KEY,
	hash       BYTEA NOT NULL UNIQUE,
	group_id   TEXT NOT NULL REFERENCES groups(id),
	note       TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at    BIGINT,
	device_id  TEXT,
	revoked_at BIGINT
);
CREATE INDEX enroll_codes_group ON enroll_codes (group_id);

CREATE TABLE device_certs (
	serial     TEXT PRIMARY KEY, -- lower-case hex
	device_id  TEXT NOT NULL REFERENCES devices(id),
	not_before BIGINT NOT NULL,
	not_after  BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX device_certs_device ON device_certs (device_id);
