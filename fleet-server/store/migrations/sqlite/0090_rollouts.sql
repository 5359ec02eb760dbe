-- Software updates (fleet-server/rollout): signed artifacts with their
-- binaries in chunks, rollouts in waves, each device's progress in a
-- rollout, and a rollout's events (wave timings, pauses, aborts).
-- Timestamps are Unix milliseconds.
CREATE TABLE artifacts (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	version     TEXT NOT NULL,
	platform    TEXT NOT NULL,
	apps        TEXT NOT NULL, -- JSON array of app names
	size        BIGINT NOT NULL,
	sha256      TEXT NOT NULL,
	min_version TEXT NOT NULL DEFAULT '',
	key_ids     TEXT NOT NULL, -- JSON array of the signing keys' ids
	manifest    BLOB NOT NULL, -- the signed manifest as uploaded
	notes       TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL, -- the manifest's
	uploaded_at BIGINT NOT NULL,
	uploaded_by TEXT NOT NULL,
	complete    INTEGER NOT NULL DEFAULT 0, -- 1 once every chunk is stored and checked
	UNIQUE (name, version, platform)
);
CREATE TABLE artifact_chunks (
	artifact_id TEXT NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	data        BLOB NOT NULL,
	PRIMARY KEY (artifact_id, n)
);
CREATE TABLE rollouts (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL,
	artifact_id     TEXT NOT NULL REFERENCES artifacts(id),
	target          TEXT NOT NULL, -- JSON: the group or the filter
	settings        TEXT NOT NULL, -- JSON: waves, thresholds, soak, window
	state           TEXT NOT NULL, -- running, paused, aborting, aborted, succeeded
	wave            INTEGER NOT NULL,
	wave_started_at BIGINT NOT NULL,
	wave_ready_at   BIGINT NOT NULL DEFAULT 0, -- the wave met its threshold; the soak runs since
	reason          TEXT NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	created_by      TEXT NOT NULL,
	updated_at      BIGINT NOT NULL,
	finished_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX rollouts_state ON rollouts (state, created_at);
CREATE TABLE rollout_devices (
	rollout_id   TEXT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	device_id    TEXT NOT NULL REFERENCES devices(id),
	wave         INTEGER NOT NULL,
	position     INTEGER NOT NULL,
	state        TEXT NOT NULL,
	from_version TEXT NOT NULL DEFAULT '',
	running      TEXT NOT NULL DEFAULT '',
	progress     INTEGER NOT NULL DEFAULT 0,
	reason       TEXT NOT NULL DEFAULT '',
	command_id   TEXT NOT NULL DEFAULT '',
	report_seq   BIGINT NOT NULL DEFAULT 0,
	started_at   BIGINT NOT NULL DEFAULT 0,
	updated_at   BIGINT NOT NULL,
	finished_at  BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_device ON rollout_devices (device_id, state);
CREATE TABLE rollout_events (
	id         TEXT PRIMARY KEY, -- UUIDv7: in the order of time
	rollout_id TEXT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	at         BIGINT NOT NULL,
	kind       TEXT NOT NULL,
	wave       INTEGER NOT NULL,
	message    TEXT NOT NULL
);
CREATE INDEX rollout_events_rollout ON rollout_events (rollout_id, id);
