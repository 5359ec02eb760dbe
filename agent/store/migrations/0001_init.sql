-- The device's outbox. Timestamps are Unix milliseconds (UTC); ids are the
-- 16 bytes of a UUID.

-- Counters that must never go back, not even when every row is deleted.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0);

-- One row per capture. seq is the device's sequence number and the rowid.
CREATE TABLE records (
	seq        INTEGER PRIMARY KEY,
	id         BLOB NOT NULL UNIQUE,
	kind       TEXT NOT NULL,
	office     TEXT NOT NULL,
	key_id     TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	meta       TEXT,                        -- JSON object, NULL if none
	sealed     BLOB,                        -- NULL once the server stored the record
	outbox     INTEGER NOT NULL,            -- 1 while unacknowledged and not rejected
	state      INTEGER NOT NULL,
	reference  TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT '',
	note       TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
);
CREATE INDEX records_outbox ON records (seq) WHERE outbox = 1;

-- The blobs of a record (photos, fingerprints). Their data lives in
-- segments until the server confirms the blob complete; the row stays.
CREATE TABLE blobs (
	bid     INTEGER PRIMARY KEY,
	id      BLOB NOT NULL UNIQUE,
	seq     INTEGER NOT NULL,               -- the record's seq
	ord     INTEGER NOT NULL,               -- position in the record's blob list
	role    TEXT NOT NULL,
	size    INTEGER NOT NULL,
	sha256  BLOB NOT NULL,
	present INTEGER NOT NULL                -- 1 while the data is on the device
);
CREATE INDEX blobs_record ON blobs (seq, ord);
CREATE INDEX blobs_present ON blobs (seq, ord) WHERE present = 1;

-- Blob data in fixed-size segments, so that a read never loads a whole blob.
CREATE TABLE segments (
	bid  INTEGER NOT NULL,
	idx  INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (bid, idx)
);

-- Small durable values: the twin, the agent's own state.
CREATE TABLE kv (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);

-- Commands received from the server, executed once.
CREATE TABLE commands (
	id          BLOB PRIMARY KEY,
	payload     BLOB NOT NULL,
	received_at INTEGER NOT NULL,
	result      BLOB,                       -- NULL until executed
	result_at   INTEGER,
	reported    INTEGER NOT NULL DEFAULT 0  -- 1 once the server stored the result
);
CREATE INDEX commands_open ON commands (received_at) WHERE result IS NULL;
CREATE INDEX commands_unreported ON commands (result_at) WHERE result IS NOT NULL AND reported = 0;
