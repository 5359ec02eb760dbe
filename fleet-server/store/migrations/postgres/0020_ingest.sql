-- Ingest: each device's sync position, the records it sent (metadata and the
-- sealed body, opaque), the records the server refused, and the blobs of the
-- records, chunk by chunk. Timestamps are Unix milliseconds.

-- high is the device's contiguous high watermark: every sequence from 1 to
-- high is stored or refused; nothing above it is.
CREATE TABLE device_sync (
	device_id  TEXT PRIMARY KEY REFERENCES devices(id),
	high       BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- n orders records as the server stored them (the paging cursor).
CREATE TABLE records (
	n           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id   TEXT NOT NULL REFERENCES devices(id),
	id          TEXT NOT NULL,
	seq         BIGINT NOT NULL,
	kind        TEXT NOT NULL,
	office      TEXT NOT NULL,
	key_id      TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL, -- the device's clock
	received_at BIGINT NOT NULL, -- the server's clock at the commit
	meta        TEXT NOT NULL DEFAULT '{}', -- JSON object of strings, non-personal
	sealed      BYTEA,           -- the sealed body; NULL once erased
	sealed_size BIGINT NOT NULL DEFAULT 0,
	UNIQUE (id, device_id), -- UUIDv7 ids: new entries go to the end
	UNIQUE (seq, device_id)  -- sequences of all devices grow together: few pages per commit
);
CREATE INDEX records_kind ON records (kind, n);
CREATE INDEX records_office ON records (office, n);

-- A refused record keeps its place in the device's sequence, so that a
-- retransmission gets the same answer and later records proceed.
CREATE TABLE record_rejections (
	device_id   TEXT NOT NULL REFERENCES devices(id),
	seq         BIGINT NOT NULL,
	id          TEXT NOT NULL,
	reason      TEXT NOT NULL,
	rejected_at BIGINT NOT NULL,
	PRIMARY KEY (device_id, seq)
);

-- have is how many leading bytes are stored; complete_at is set once the
-- whole blob is assembled and its SHA-256 verified.
CREATE TABLE blobs (
	device_id   TEXT NOT NULL,
	record_id   TEXT NOT NULL,
	id          TEXT NOT NULL,
	idx         INTEGER NOT NULL, -- position in the record's list of blobs
	role        TEXT NOT NULL,
	size        BIGINT NOT NULL,
	sha256      BYTEA NOT NULL,
	have        BIGINT NOT NULL DEFAULT 0,
	started_at  BIGINT,
	complete_at BIGINT,
	PRIMARY KEY (device_id, record_id, id),
	FOREIGN KEY (device_id, record_id) REFERENCES records (device_id, id)
);
CREATE INDEX blobs_incomplete ON blobs (device_id) WHERE complete_at IS NULL;

CREATE TABLE blob_chunks (
	device_id TEXT NOT NULL,
	record_id TEXT NOT NULL,
	blob_id   TEXT NOT NULL,
	off       BIGINT NOT NULL,
	data      BYTEA NOT NULL,
	PRIMARY KEY (device_id, record_id, blob_id, off),
	FOREIGN KEY (device_id, record_id, blob_id) REFERENCES blobs (device_id, record_id, id)
);
