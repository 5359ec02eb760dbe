-- Key-value settings of the server itself (for example the fleet CA's state).
CREATE TABLE settings (
	key        TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	updated_at BIGINT NOT NULL
);
