-- Key-value settings of the server itself (for example the fleet CA's state).
CREATE TABLE settings (
	key        TEXT PRIMARY KEY,
	value      BYTEA NOT NULL,
	updated_at BIGINT NOT NULL
);
